//! Prometheus metrics in the text exposition format, kept with atomics: reconcile
//! duration, Applications desired/applied/deleted/held, git fetch duration, and
//! generator errors by type. A handful of series does not need a metrics crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram of seconds.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{le}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric the controller exports.
#[derive(Default)]
pub struct Metrics {
    /// Time per reconcile pass.
    pub reconcile: Histogram,
    /// Time per git fetch.
    pub git_fetch: Histogram,
    /// Applications rendered in the last pass, per ApplicationSet.
    desired: Mutex<BTreeMap<String, u64>>,
    /// Deletes held in the last pass, per ApplicationSet.
    held: Mutex<BTreeMap<String, u64>>,
    /// Server-side applies made (creates and updates).
    pub applied: AtomicU64,
    /// Deletes made.
    pub deleted: AtomicU64,
    /// Render failures by generator kind (`git`, `plugin`, …; `other` when unknown).
    generator_errors: Mutex<BTreeMap<String, u64>>,
    /// SCM API requests by (provider, HTTP status; 0 for no answer).
    scm_requests: Mutex<BTreeMap<(String, u16), u64>>,
    /// The last `X-RateLimit-Remaining` each SCM provider reported.
    scm_remaining: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    /// Records one pass of the set `key`.
    pub fn pass(&self, key: &str, desired: usize, held: usize) {
        if let Ok(mut m) = self.desired.lock() {
            m.insert(key.to_string(), desired as u64);
        }
        if let Ok(mut m) = self.held.lock() {
            m.insert(key.to_string(), held as u64);
        }
    }

    /// Forgets a deleted set's gauges.
    pub fn forget(&self, key: &str) {
        for m in [&self.desired, &self.held] {
            if let Ok(mut m) = m.lock() {
                m.remove(key);
            }
        }
    }

    /// Counts one SCM API request, and the rate limit it reported left.
    pub fn scm_request(&self, provider: &str, status: u16, remaining: Option<u64>) {
        if let Ok(mut m) = self.scm_requests.lock() {
            *m.entry((provider.to_string(), status)).or_default() += 1;
        }
        if let (Some(left), Ok(mut m)) = (remaining, self.scm_remaining.lock()) {
            m.insert(provider.to_string(), left);
        }
    }

    /// Counts a render failure; the generator kind is read from the message's spec path.
    pub fn generator_error(&self, message: &str) {
        let kind = generator_kind(message).unwrap_or("other");
        if let Ok(mut m) = self.generator_errors.lock() {
            *m.entry(kind.to_string()).or_default() += 1;
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.reconcile.render(
            &mut out,
            "prism_reconcile_duration_seconds",
            "Time per ApplicationSet reconcile pass.",
        );
        self.git_fetch.render(
            &mut out,
            "prism_git_fetch_duration_seconds",
            "Time per git fetch into the shared cache.",
        );
        let gauge = |out: &mut String, name: &str, help: &str, m: &Mutex<BTreeMap<String, u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            if let Ok(m) = m.lock() {
                for (k, v) in m.iter() {
                    let _ = writeln!(out, "{name}{{applicationset=\"{}\"}} {v}", escape(k));
                }
            }
        };
        gauge(
            &mut out,
            "prism_applications_desired",
            "Applications the last render produced.",
            &self.desired,
        );
        gauge(
            &mut out,
            "prism_applications_held",
            "Deletes the deletion guard holds.",
            &self.held,
        );
        for (name, help, v) in [
            (
                "prism_applications_applied_total",
                "Server-side applies of Applications.",
                &self.applied,
            ),
            (
                "prism_applications_deleted_total",
                "Applications deleted.",
                &self.deleted,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let name = "prism_generator_errors_total";
        let _ = writeln!(
            out,
            "# HELP {name} Renders that failed, by generator type.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.generator_errors.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(out, "{name}{{generator=\"{}\"}} {v}", escape(k));
            }
        }
        let name = "prism_scm_requests_total";
        let _ = writeln!(
            out,
            "# HELP {name} SCM provider API requests (pullRequest), by HTTP status (0: no answer).\n# TYPE {name} counter"
        );
        if let Ok(m) = self.scm_requests.lock() {
            for ((provider, code), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "{name}{{provider=\"{}\",code=\"{code}\"}} {v}",
                    escape(provider)
                );
            }
        }
        let name = "prism_scm_rate_limit_remaining";
        let _ = writeln!(
            out,
            "# HELP {name} The rate limit each SCM provider last reported left.\n# TYPE {name} gauge"
        );
        if let Ok(m) = self.scm_remaining.lock() {
            for (provider, v) in m.iter() {
                let _ = writeln!(out, "{name}{{provider=\"{}\"}} {v}", escape(provider));
            }
        }
        out
    }
}

/// The innermost generator kind a spec path names (`spec.generators[1].matrix.generators[0].git` → `git`).
fn generator_kind(message: &str) -> Option<&str> {
    let start = message.find("spec.generators[")?;
    let path = message[start..].split([':', ' ']).next()?;
    path.rsplit('.')
        .find(|seg| !seg.starts_with("generators[") && !seg.contains('['))
        .filter(|seg| prism_engine::generators::lookup(seg).is_some())
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_histograms_gauges_and_counters() {
        let m = Metrics::default();
        m.reconcile.observe(Duration::from_millis(30));
        m.reconcile.observe(Duration::from_secs(2));
        m.pass("argocd.shop", 12, 3);
        m.applied.fetch_add(5, Ordering::Relaxed);
        m.generator_error("spec.generators[1].matrix.generators[0].git: repository not found");
        m.generator_error("spec.generators[0].plugin: timed out");
        m.generator_error("something without a path");
        m.scm_request("github", 200, Some(4999));
        m.scm_request("github", 304, Some(4999));
        m.scm_request("github", 304, None);
        let text = m.render();
        for line in [
            "prism_scm_requests_total{provider=\"github\",code=\"200\"} 1",
            "prism_scm_requests_total{provider=\"github\",code=\"304\"} 2",
            "prism_scm_rate_limit_remaining{provider=\"github\"} 4999",
            "prism_reconcile_duration_seconds_bucket{le=\"0.025\"} 0",
            "prism_reconcile_duration_seconds_bucket{le=\"0.05\"} 1",
            "prism_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2",
            "prism_reconcile_duration_seconds_sum 2.03",
            "prism_reconcile_duration_seconds_count 2",
            "prism_applications_desired{applicationset=\"argocd.shop\"} 12",
            "prism_applications_held{applicationset=\"argocd.shop\"} 3",
            "prism_applications_applied_total 5",
            "prism_generator_errors_total{generator=\"git\"} 1",
            "prism_generator_errors_total{generator=\"plugin\"} 1",
            "prism_generator_errors_total{generator=\"other\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        m.forget("argocd.shop");
        assert!(!m.render().contains("argocd.shop"));
    }
}
