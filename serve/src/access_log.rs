//! One access log line per request, in Envoy's default format followed by
//! the upstream cluster, the response code details and the plugin that
//! answered locally:
//!
//! ```text
//! [2024-05-01T12:00:00.123Z] "GET /api HTTP/1.1" 200 - 0 12 3 2 "-" "curl/8.5.0" "<request id>" "localhost:10000" "127.0.0.1:8081" backend via_upstream -
//! ```
//!
//! Fields: start time, request line, response code, response flags, bytes
//! received, bytes sent, duration (ms), upstream service time (ms),
//! `x-forwarded-for`, user agent, request id, authority, upstream host,
//! upstream cluster, response code details, plugin that answered locally.

use super::config::AccessLogTarget;
use std::io::Write;
use std::sync::Mutex;
use std::time::SystemTime;

/// What one line needs.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub start: Option<SystemTime>,
    pub method: String,
    pub path: String,
    pub protocol: &'static str,
    pub status: u16,
    pub flags: String,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration_ms: u64,
    pub upstream_service_time: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub authority: Option<String>,
    pub upstream_host: Option<String>,
    pub upstream_cluster: Option<String>,
    pub details: Option<String>,
    pub local_reply_by: Option<String>,
}

fn dash(v: &Option<String>) -> &str {
    match v.as_deref() {
        None | Some("") => "-",
        Some(s) => s,
    }
}

impl Entry {
    /// The formatted line (without newline).
    pub fn format(&self) -> String {
        format!(
            "[{}] \"{} {} {}\" {} {} {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {}",
            self.start.map(rfc3339_millis).unwrap_or_else(|| "-".into()),
            self.method,
            self.path,
            self.protocol,
            self.status,
            self.flags,
            self.bytes_received,
            self.bytes_sent,
            self.duration_ms,
            dash(&self.upstream_service_time),
            dash(&self.forwarded_for),
            dash(&self.user_agent),
            dash(&self.request_id),
            dash(&self.authority),
            dash(&self.upstream_host),
            dash(&self.upstream_cluster),
            dash(&self.details),
            dash(&self.local_reply_by),
        )
    }
}

/// The access log sink, plus an optional in-memory ring of the last
/// entries (for programs that embed the server, like `wasmesh demo`).
pub struct AccessLog {
    out: Option<Mutex<Box<dyn Write + Send>>>,
    recent: Option<Mutex<std::collections::VecDeque<Entry>>>,
    keep: usize,
}

impl AccessLog {
    pub fn open(target: &AccessLogTarget) -> Result<AccessLog, String> {
        let out: Option<Box<dyn Write + Send>> = match target {
            AccessLogTarget::Off => None,
            AccessLogTarget::Stdout => Some(Box::new(std::io::stdout())),
            AccessLogTarget::Stderr => Some(Box::new(std::io::stderr())),
            AccessLogTarget::File(p) => Some(Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| format!("access log {}: {e}", p.display()))?,
            )),
        };
        Ok(AccessLog {
            out: out.map(Mutex::new),
            recent: None,
            keep: 0,
        })
    }

    /// Also keeps the last `n` entries in memory (see [`AccessLog::recent`]).
    pub fn keep_recent(mut self, n: usize) -> AccessLog {
        if n > 0 {
            self.recent = Some(Mutex::new(std::collections::VecDeque::with_capacity(n)));
            self.keep = n;
        }
        self
    }

    /// The entries kept in memory, oldest first.
    pub fn recent(&self) -> Vec<Entry> {
        match &self.recent {
            Some(r) => r
                .lock()
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.out.is_some() || self.recent.is_some()
    }

    pub fn write(&self, e: &Entry) {
        if let Some(r) = &self.recent {
            if let Ok(mut r) = r.lock() {
                if r.len() == self.keep {
                    r.pop_front();
                }
                r.push_back(e.clone());
            }
        }
        if let Some(out) = &self.out {
            let mut line = e.format();
            line.push('\n');
            if let Ok(mut w) = out.lock() {
                let _ = w.write_all(line.as_bytes());
                let _ = w.flush();
            }
        }
    }
}

/// `2024-05-01T12:00:00.123Z`.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339_millis(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(
            rfc3339_millis(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn line() {
        let e = Entry {
            method: "GET".into(),
            path: "/a".into(),
            protocol: "HTTP/1.1",
            status: 503,
            flags: "UF".into(),
            upstream_cluster: Some("backend".into()),
            local_reply_by: Some("authn".into()),
            ..Default::default()
        };
        assert_eq!(
            e.format(),
            "[-] \"GET /a HTTP/1.1\" 503 UF 0 0 0 - \"-\" \"-\" \"-\" \"-\" \"-\" backend - authn"
        );
    }
}
