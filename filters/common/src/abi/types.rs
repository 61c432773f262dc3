//! The enumerations of Proxy-Wasm ABI v0.2.1, as plain values.
//!
//! Host calls return their status as a `u32`; [`Status`] keeps every value
//! the host may send (an unknown one is [`Status::Other`]) so that decoding a
//! status can never be undefined behaviour, unlike a `#[repr(u32)]` enum read
//! straight from the host.

/// Why a host call failed (every status but `OK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// `NOT_FOUND` (1): no such header, property, key, queue, context...
    NotFound,
    /// `BAD_ARGUMENT` (2): e.g. a header map not available in this callback.
    BadArgument,
    /// `SERIALIZATION_FAILURE` (3).
    SerializationFailure,
    /// `PARSE_FAILURE` (4).
    ParseFailure,
    /// `INVALID_MEMORY_ACCESS` (6).
    InvalidMemoryAccess,
    /// `EMPTY` (7): e.g. an empty shared queue.
    Empty,
    /// `CAS_MISMATCH` (8): shared data changed since it was read.
    CasMismatch,
    /// `INTERNAL_FAILURE` (10).
    InternalFailure,
    /// `BROKEN_CONNECTION` (11).
    BrokenConnection,
    /// `UNIMPLEMENTED` (12).
    Unimplemented,
    /// Any other non-zero value.
    Other(u32),
}

impl Status {
    /// `Ok(())` for `OK` (0), else the failure.
    #[inline]
    pub fn check(code: u32) -> Result<(), Status> {
        match code {
            0 => Ok(()),
            c => Err(Status::from_code(c)),
        }
    }

    /// The status of a non-zero code.
    pub fn from_code(code: u32) -> Status {
        match code {
            1 => Status::NotFound,
            2 => Status::BadArgument,
            3 => Status::SerializationFailure,
            4 => Status::ParseFailure,
            6 => Status::InvalidMemoryAccess,
            7 => Status::Empty,
            8 => Status::CasMismatch,
            10 => Status::InternalFailure,
            11 => Status::BrokenConnection,
            12 => Status::Unimplemented,
            c => Status::Other(c),
        }
    }

    /// The ABI's numeric value.
    pub fn code(self) -> u32 {
        match self {
            Status::NotFound => 1,
            Status::BadArgument => 2,
            Status::SerializationFailure => 3,
            Status::ParseFailure => 4,
            Status::InvalidMemoryAccess => 6,
            Status::Empty => 7,
            Status::CasMismatch => 8,
            Status::InternalFailure => 10,
            Status::BrokenConnection => 11,
            Status::Unimplemented => 12,
            Status::Other(c) => c,
        }
    }
}

/// Log levels (`proxy_log`, `proxy_get_log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    /// The level of a host value (above `Critical`: `Critical`).
    pub fn from_u32(v: u32) -> LogLevel {
        match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            _ => LogLevel::Critical,
        }
    }
}

/// What a stream callback tells the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    /// Go on with the next filter.
    Continue = 0,
    /// Stop here (Envoy: `StopAllIterationAndWatermark` from a headers
    /// callback, buffering from a body callback) until `proxy_continue_stream`
    /// or a local reply.
    Pause = 1,
}

/// Header maps (`proxy_*_header_map_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MapType {
    HttpRequestHeaders = 0,
    HttpRequestTrailers = 1,
    HttpResponseHeaders = 2,
    HttpResponseTrailers = 3,
    GrpcReceiveInitialMetadata = 4,
    GrpcReceiveTrailingMetadata = 5,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

/// Buffers (`proxy_get_buffer_bytes`, `proxy_set_buffer_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum BufferType {
    HttpRequestBody = 0,
    HttpResponseBody = 1,
    DownstreamData = 2,
    UpstreamData = 3,
    HttpCallResponseBody = 4,
    GrpcReceiveBuffer = 5,
    VmConfiguration = 6,
    PluginConfiguration = 7,
    CallData = 8,
}

/// Streams (`proxy_continue_stream`, `proxy_close_stream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum StreamType {
    HttpRequest = 0,
    HttpResponse = 1,
    Downstream = 2,
    Upstream = 3,
}

/// Metric kinds (`proxy_define_metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// The decimal text of an integer on the stack, for log lines assembled
/// with `log_parts` instead of `format!` (whose machinery costs code size
/// and time): `log_parts(Debug, &["delay ", Decimal::new(ms).as_str(), "ms"])`.
#[derive(Clone, Copy)]
pub struct Decimal {
    buf: [u8; 20],
    start: u8,
}

impl Decimal {
    /// The digits of `n`.
    pub fn new(mut n: u64) -> Decimal {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        Decimal {
            buf,
            start: i as u8,
        }
    }

    /// The digits as text.
    pub fn as_str(&self) -> &str {
        let digits = self.buf.get(usize::from(self.start)..).unwrap_or_default();
        // Only ASCII digits were written.
        std::str::from_utf8(digits).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        assert_eq!(Status::check(0), Ok(()));
        for code in 1..=20 {
            let s = Status::check(code).unwrap_err();
            assert_eq!(s.code(), code);
        }
        assert_eq!(Status::from_code(8), Status::CasMismatch);
        assert_eq!(Status::from_code(5), Status::Other(5));
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 503, 1_000_000, u64::MAX] {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
    }

    #[test]
    fn log_levels_order() {
        assert!(LogLevel::Debug < LogLevel::Info);
        assert_eq!(LogLevel::from_u32(2), LogLevel::Info);
        assert_eq!(LogLevel::from_u32(99), LogLevel::Critical);
    }
}
