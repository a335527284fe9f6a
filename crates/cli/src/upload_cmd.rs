//! `chronote upload` and the `--server/--token` options of `record`. (Owned by the uploader work
//! of issue 3.)

use anyhow::{Result, bail};
use clap::Args;

/// Where to upload to; on `record` these turn on uploading while recording.
#[derive(Args, Debug, Clone, Default)]
pub struct RemoteArgs {}

#[derive(Args)]
pub struct UploadArgs {}

pub fn run(_args: UploadArgs) -> Result<()> {
    bail!("`chronote upload` is not built yet (issue 3)")
}
