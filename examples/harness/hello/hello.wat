;; hello.wat — the smallest useful Proxy-Wasm HTTP filter, written by hand.
;;
;; * on_configure keeps the plugin configuration (a greeting) and refuses an
;;   empty one;
;; * every request gets `x-hello: <greeting>` before it goes upstream;
;; * every response gets `x-served-by: wasmesh hello.wat`.
;;
;; It needs no build step: the harness compiles WebAssembly text directly.
(module
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $replace_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; A bump allocator for what the host hands us (configuration bytes).
  (global $heap (mut i32) (i32.const 65536))
  (global $greeting (mut i32) (i32.const 0))
  (global $greeting_len (mut i32) (i32.const 0))
  (data (i32.const 16) "x-hello")
  (data (i32.const 32) "x-served-by")
  (data (i32.const 48) "wasmesh hello.wat")
  (data (i32.const 80) "configured with a greeting")
  (data (i32.const 112) "refusing an empty greeting")

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))

  ;; PLUGIN_CONFIGURATION (buffer type 7) is readable during on_configure.
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (if (i32.eqz (local.get $size))
      (then
        (drop (call $log (i32.const 4) (i32.const 112) (i32.const 26)))
        (return (i32.const 0))))
    (drop (call $get_buffer (i32.const 7) (i32.const 0) (local.get $size) (i32.const 1024) (i32.const 1028)))
    (global.set $greeting (i32.load (i32.const 1024)))
    (global.set $greeting_len (i32.load (i32.const 1028)))
    (drop (call $log (i32.const 2) (i32.const 80) (i32.const 26)))
    (i32.const 1))

  ;; Map 0 = request headers, 2 = response headers. Return 0 = continue.
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $replace_header (i32.const 0) (i32.const 16) (i32.const 7)
                                (global.get $greeting) (global.get $greeting_len)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $replace_header (i32.const 2) (i32.const 32) (i32.const 11) (i32.const 48) (i32.const 17)))
    (i32.const 0))
)
