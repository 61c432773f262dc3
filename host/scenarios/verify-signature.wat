;; Calls Envoy's foreign function verify_signature with the arguments given,
;; hex-encoded, in the request header x-args (a serialised
;; VerifySignatureArguments), and logs "status=<status> result=<raw result
;; bytes>" (the status as a digit). Used by verify-signature*.yaml.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function" (func $foreign (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 131072))
  (data (i32.const 16) "x-args")
  (data (i32.const 32) "verify_signature")
  (data (i32.const 64) "status=? result=")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func $nibble (param $c i32) (result i32)
    (if (result i32) (i32.le_u (local.get $c) (i32.const 57))
      (then (i32.sub (local.get $c) (i32.const 48)))
      (else (i32.sub (i32.or (local.get $c) (i32.const 32)) (i32.const 87)))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (local $src i32) (local $n i32) (local $i i32) (local $status i32) (local $len i32)
    ;; header value -> (ptr at 1024, len at 1028); absent: empty arguments
    (i32.store (i32.const 1028) (i32.const 0))
    (drop (call $get (i32.const 0) (i32.const 16) (i32.const 6) (i32.const 1024) (i32.const 1028)))
    (local.set $src (i32.load (i32.const 1024)))
    (local.set $n (i32.shr_u (i32.load (i32.const 1028)) (i32.const 1)))
    ;; hex -> bytes at 8192
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store8 (i32.add (i32.const 8192) (local.get $i))
          (i32.or
            (i32.shl (call $nibble (i32.load8_u (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 1))))) (i32.const 4))
            (call $nibble (i32.load8_u (i32.add (local.get $src) (i32.add (i32.shl (local.get $i) (i32.const 1)) (i32.const 1)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.store (i32.const 1032) (i32.const 0))
    (i32.store (i32.const 1036) (i32.const 0))
    (local.set $status
      (call $foreign (i32.const 32) (i32.const 16) (i32.const 8192) (local.get $n) (i32.const 1032) (i32.const 1036)))
    (i32.store8 (i32.const 71) (i32.add (i32.const 48) (local.get $status)))
    ;; message = prefix + result bytes, at 65536
    (memory.copy (i32.const 65536) (i32.const 64) (i32.const 16))
    (local.set $len (i32.load (i32.const 1036)))
    (memory.copy (i32.const 65552) (i32.load (i32.const 1032)) (local.get $len))
    (drop (call $log (i32.const 2) (i32.const 65536) (i32.add (i32.const 16) (local.get $len))))
    (i32.const 0))
)
