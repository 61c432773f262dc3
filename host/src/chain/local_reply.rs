//! Local replies (`proxy_send_local_response`, failures, the router's
//! own answers) as Envoy's `sendLocalReply` builds them, gRPC included
//! (HTTP status to gRPC status, `grpc-message` encoding).

use super::*;

impl Worker {
    pub(super) fn local_reply(&mut self, sid: u64, position: usize, reply: LocalReply) {
        let Some(s) = self.streams.get_mut(&sid) else {
            return;
        };
        if s.finished {
            return;
        }
        if s.downstream_headers_sent {
            // Too late for a reply: Envoy resets the stream.
            self.reset(sid, "local_reply_after_response_started");
            return;
        }
        if s.local_reply_by.is_some() && position < s.ctx.len() {
            // A second reply from a filter while the first is being encoded is
            // ignored, as Envoy ignores it.
            return;
        }
        s.local_reply_by = Some(position);
        let headers = local_reply_headers(&reply, s.grpc_request);
        let body = if s.grpc_request {
            Vec::new()
        } else {
            reply.body.clone()
        };
        let eos = body.is_empty();
        let direct = s.response_started;
        s.response_started = true;
        {
            let mut d = s.data.borrow_mut();
            // Envoy records the details as given, even when empty.
            d.code_details = Some(reply.details.clone());
            d.resp_headers = Some(headers.clone());
            d.resp_trailers = None;
            for slot in d.slots.iter_mut() {
                slot.open &= !(window::REQ_HEADERS | window::REQ_BODY | window::REQ_TRAILERS);
            }
        }
        if direct {
            // The response already entered the filters: reply straight to the client.
            s.downstream_headers_sent = true;
            if !eos {
                s.data.borrow_mut().resp_body_bytes += body.len() as u64;
            }
            self.push(
                sid,
                StreamEvent::DownstreamHeaders {
                    headers,
                    end_stream: eos,
                },
            );
            if !eos {
                self.push(
                    sid,
                    StreamEvent::DownstreamData {
                        data: body,
                        end_stream: true,
                    },
                );
            }
            self.downstream_complete(sid);
            return;
        }
        for f in s.resp.iter_mut() {
            *f = FilterDir::default();
        }
        s.headers_eos[1] = eos;
        self.headers_at(sid, Dir::Resp, 0, eos);
        if !eos {
            self.data_at(sid, Dir::Resp, 0, body, true);
        }
    }
}

/// Headers of a local reply as Envoy builds them; for a gRPC request the
/// reply becomes a trailers-only gRPC response (HTTP 200 with `grpc-status`
/// and `grpc-message`).
pub fn local_reply_headers(reply: &LocalReply, grpc: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    if grpc {
        h.add(b":status", b"200");
        h.add(b"content-type", b"application/grpc");
        let status = reply
            .grpc_status
            .unwrap_or_else(|| http_to_grpc_status(reply.status));
        h.add(b"grpc-status", status.to_string().as_bytes());
        if !reply.body.is_empty() {
            h.add(b"grpc-message", grpc_percent_encode(&reply.body).as_bytes());
        }
    } else {
        h.add(b":status", reply.status.to_string().as_bytes());
        if !reply.body.is_empty() {
            h.add(b"content-length", reply.body.len().to_string().as_bytes());
            if !reply
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
            {
                h.add(b"content-type", b"text/plain");
            }
        }
    }
    for (k, v) in &reply.headers {
        h.add(k, v);
    }
    h
}

/// Envoy's `Grpc::Utility::httpToGrpcStatus`.
pub fn http_to_grpc_status(http: u32) -> u32 {
    match http {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502..=504 => 14,
        _ => 2,
    }
}

pub(super) fn grpc_percent_encode(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'%' {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}
