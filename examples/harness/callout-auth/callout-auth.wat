;; callout-auth.wat — external authorization with an HTTP callout, by hand.
;;
;; For every request:
;;   * no `authorization` header          -> 401 "missing credentials";
;;   * else GET /check on cluster `auth` with the request's `authorization`,
;;     pausing the request until the answer arrives (timeout 1 s);
;;   * auth answers 2xx                   -> the request continues, with the
;;     auth service's `x-user` (a client-sent `x-user` is always removed);
;;   * auth answers 5xx or the call fails  -> 503 "auth service unavailable";
;;   * anything else                      -> 403 "denied by auth service".
;;
;; The callout's answer goes to the root context; the module maps the token to
;; the paused stream's context and makes it current with
;; proxy_set_effective_context before touching the stream.
(module
  (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove_header (param i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $set_effective_context (param i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $continue_stream (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))

  (data (i32.const 64) "auth")
  (data (i32.const 72) "authorization")
  (data (i32.const 96) "x-user")
  (data (i32.const 104) ":status")
  (data (i32.const 112) "missing credentials")
  (data (i32.const 144) "denied by auth service")
  (data (i32.const 176) "auth service unavailable")
  (data (i32.const 208) "auth_missing_credentials")
  (data (i32.const 240) "auth_denied")
  (data (i32.const 256) "auth_unavailable")
  ;; The callout's headers, serialised as the ABI wants them: 4 pairs, their
  ;; sizes, then NUL-terminated names and values. The last value (the
  ;; credentials) and its size are filled in per request.
  (data (i32.const 8192)
    "\04\00\00\00"
    "\07\00\00\00\03\00\00\00"   ;; :method GET
    "\05\00\00\00\06\00\00\00"   ;; :path /check
    "\0a\00\00\00\04\00\00\00"   ;; :authority auth
    "\0d\00\00\00\00\00\00\00"   ;; authorization <value>
    ":method\00GET\00:path\00/check\00:authority\00auth\00authorization\00")
  ;; token -> stream context id
  (global $calls i32 (i32.const 4096))

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))

  (func $reply (param $code i32) (param $details i32) (param $details_len i32) (param $body i32) (param $body_len i32)
    (drop (call $send_local_response (local.get $code) (local.get $details) (local.get $details_len)
                                     (local.get $body) (local.get $body_len) (i32.const 0) (i32.const 0) (i32.const -1))))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
    (local $len i32)
    ;; Never trust an identity header sent by the client.
    (drop (call $remove_header (i32.const 0) (i32.const 96) (i32.const 6)))
    (if (call $get_header (i32.const 0) (i32.const 72) (i32.const 13) (i32.const 1024) (i32.const 1028))
      (then
        (call $reply (i32.const 401) (i32.const 208) (i32.const 24) (i32.const 112) (i32.const 19))
        (return (i32.const 1))))
    ;; Append the credentials to the serialised headers: size at 8224, value at 8283.
    (local.set $len (i32.load (i32.const 1028)))
    (i32.store (i32.const 8224) (local.get $len))
    (memory.copy (i32.const 8283) (i32.load (i32.const 1024)) (local.get $len))
    (i32.store8 (i32.add (i32.const 8283) (local.get $len)) (i32.const 0))
    (if (call $http_call (i32.const 64) (i32.const 4)
                         (i32.const 8192) (i32.add (i32.const 92) (local.get $len))
                         (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                         (i32.const 1000) (i32.const 1032))
      (then
        (call $reply (i32.const 503) (i32.const 256) (i32.const 16) (i32.const 176) (i32.const 24))
        (return (i32.const 1))))
    (i32.store (i32.add (global.get $calls) (i32.shl (i32.and (i32.load (i32.const 1032)) (i32.const 1023)) (i32.const 2)))
               (local.get $ctx))
    ;; Pause the request until the answer.
    (i32.const 1))

  (func (export "proxy_on_http_call_response") (param $root i32) (param $token i32) (param $headers i32) (param i32 i32)
    (local $first i32)
    (drop (call $set_effective_context
      (i32.load (i32.add (global.get $calls) (i32.shl (i32.and (local.get $token) (i32.const 1023)) (i32.const 2))))))
    ;; A failed call (reset) has no headers.
    (if (i32.eqz (local.get $headers))
      (then
        (call $reply (i32.const 503) (i32.const 256) (i32.const 16) (i32.const 176) (i32.const 24))
        (return)))
    (drop (call $get_header (i32.const 6) (i32.const 104) (i32.const 7) (i32.const 1024) (i32.const 1028)))
    (local.set $first (i32.load8_u (i32.load (i32.const 1024))))
    (if (i32.eq (local.get $first) (i32.const 50)) ;; '2'
      (then
        (if (i32.eqz (call $get_header (i32.const 6) (i32.const 96) (i32.const 6) (i32.const 1036) (i32.const 1040)))
          (then
            (drop (call $replace_header (i32.const 0) (i32.const 96) (i32.const 6)
                                        (i32.load (i32.const 1036)) (i32.load (i32.const 1040))))))
        (drop (call $continue_stream (i32.const 0)))
        (return)))
    (if (i32.eq (local.get $first) (i32.const 53)) ;; '5'
      (then
        (call $reply (i32.const 503) (i32.const 256) (i32.const 16) (i32.const 176) (i32.const 24))
        (return)))
    (call $reply (i32.const 403) (i32.const 240) (i32.const 11) (i32.const 144) (i32.const 22)))
)
