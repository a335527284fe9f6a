//! Process-wide counters and histograms, and the Prometheus text exposition format (0.0.4).
//!
//! Counters and histograms live here; gauges that describe the queue (jobs by state, oldest
//! queued job, per-meeting lag and backlog) are read from the database at scrape time and
//! passed to [`Metrics::render`], so they are never stale after a restart.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Label pairs, in a fixed order per family.
pub type Labels = Vec<(&'static str, String)>;

const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
const STOP_TO_NOTES_BUCKETS: &[f64] = &[
    0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (i, b) in self.bounds.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<&'static str, BTreeMap<Labels, f64>>,
    histograms: BTreeMap<&'static str, BTreeMap<Labels, Histogram>>,
}

/// The counter and histogram families, with their help text.
const COUNTERS: &[(&str, &str)] = &[
    (
        "chronote_uploads_total",
        "Segment uploads completed and recorded as received.",
    ),
    (
        "chronote_upload_bytes_total",
        "Bytes of completed segment uploads.",
    ),
    (
        "chronote_provider_errors_total",
        "Failed provider calls, by provider and error class (transient, permanent).",
    ),
    (
        "chronote_provider_rate_limited_total",
        "Provider answers of 429 (rate limited).",
    ),
    (
        "chronote_rate_limiter_wait_seconds_total",
        "Time workers waited for provider rate-limit tokens or a 429 pause.",
    ),
];
const HISTOGRAMS: &[(&str, &str, &[f64])] = &[
    (
        "chronote_job_duration_seconds",
        "Duration of provider calls of finished job attempts, by engine and job kind.",
        DURATION_BUCKETS,
    ),
    (
        "chronote_stop_to_notes_seconds",
        "Time from a recording's stop to its first final notes.",
        STOP_TO_NOTES_BUCKETS,
    ),
];

/// A gauge family computed at scrape time.
#[derive(Debug, Clone)]
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(Labels, f64)>,
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `v` to counter `name` with `labels`.
    pub fn add(&self, name: &'static str, labels: Labels, v: f64) {
        *self
            .inner()
            .counters
            .entry(name)
            .or_default()
            .entry(labels)
            .or_insert(0.0) += v;
    }

    /// Records `v` in histogram `name` with `labels`.
    pub fn observe(&self, name: &'static str, labels: Labels, v: f64) {
        let bounds = HISTOGRAMS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map_or(DURATION_BUCKETS, |(_, _, b)| *b);
        self.inner()
            .histograms
            .entry(name)
            .or_default()
            .entry(labels)
            .or_insert_with(|| Histogram::new(bounds))
            .observe(v);
    }

    /// The value of a counter.
    #[cfg(test)]
    pub fn counter(&self, name: &str, labels: &Labels) -> f64 {
        self.inner()
            .counters
            .get(name)
            .and_then(|m| m.get(labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// The whole exposition: `gauges` first, then every counter and histogram family (each
    /// with HELP and TYPE even when it has no samples yet).
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        for g in gauges {
            header(&mut out, g.name, g.help, "gauge");
            for (labels, v) in &g.samples {
                sample(&mut out, g.name, labels, *v);
            }
        }
        let inner = self.inner();
        for (name, help) in COUNTERS {
            header(&mut out, name, help, "counter");
            if let Some(series) = inner.counters.get(name) {
                for (labels, v) in series {
                    sample(&mut out, name, labels, *v);
                }
            }
        }
        for (name, help, _) in HISTOGRAMS {
            header(&mut out, name, help, "histogram");
            let Some(series) = inner.histograms.get(name) else {
                continue;
            };
            for (labels, h) in series {
                let bucket = format!("{name}_bucket");
                for (b, c) in h.bounds.iter().zip(&h.counts) {
                    let mut l = labels.clone();
                    l.push(("le", format_value(*b)));
                    sample(&mut out, &bucket, &l, *c as f64);
                }
                let mut l = labels.clone();
                l.push(("le", "+Inf".into()));
                sample(&mut out, &bucket, &l, h.count as f64);
                sample(&mut out, &format!("{name}_sum"), labels, h.sum);
                sample(&mut out, &format!("{name}_count"), labels, h.count as f64);
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(
        out,
        "# HELP {name} {}",
        help.replace('\\', "\\\\").replace('\n', "\\n")
    );
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn format_value(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else {
        format!("{v}")
    }
}

fn sample(out: &mut String, name: &str, labels: &Labels, v: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, val)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape(val));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", format_value(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.add("chronote_uploads_total", vec![], 2.0);
        m.add(
            "chronote_provider_errors_total",
            vec![("provider", "a\"b".into()), ("class", "transient".into())],
            1.0,
        );
        m.observe("chronote_stop_to_notes_seconds", vec![], 0.7);
        m.observe("chronote_stop_to_notes_seconds", vec![], 3.0);
        let text = m.render(&[Gauge {
            name: "chronote_jobs",
            help: "Jobs by state.",
            samples: vec![(vec![("state", "queued".into())], 4.0)],
        }]);
        assert!(text.starts_with(
            "# HELP chronote_jobs Jobs by state.\n# TYPE chronote_jobs gauge\n\
             chronote_jobs{state=\"queued\"} 4\n"
        ));
        assert!(text.contains("\nchronote_uploads_total 2\n"));
        assert!(text.contains(
            "\nchronote_provider_errors_total{provider=\"a\\\"b\",class=\"transient\"} 1\n"
        ));
        assert!(text.contains("\nchronote_stop_to_notes_seconds_bucket{le=\"0.5\"} 0\n"));
        assert!(text.contains("\nchronote_stop_to_notes_seconds_bucket{le=\"1\"} 1\n"));
        assert!(text.contains("\nchronote_stop_to_notes_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("\nchronote_stop_to_notes_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("\nchronote_stop_to_notes_seconds_sum 3.7\n"));
        assert!(text.contains("\nchronote_stop_to_notes_seconds_count 2\n"));
        assert_eq!(
            m.counter("chronote_uploads_total", &vec![]),
            2.0,
            "counter readback"
        );
    }
}
