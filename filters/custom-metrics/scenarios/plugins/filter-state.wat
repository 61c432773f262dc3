;; filter-state.wat — a stand-in for the filters that run before the metrics
;; filter and leave per-stream filter state for it:
;;
;; * `x-set-identity: <json>` is stored as `wasmesh.identity` (what
;;   jwt_authn.wasm stores after verifying a token);
;; * `x-set-fault: FI` is stored as `wasmesh.fault` (what
;;   fault_injection.wasm stores when it injects a fault).
;;
;; Both are single-segment property paths, as the Rust SDK writes them
;; (`set_property(vec!["wasmesh.identity"], ..)`). Tests only: a real
;; deployment never lets a client header set filter state.
(module
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property"
    (func $set_property (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  (data (i32.const 16) "x-set-identity")
  (data (i32.const 32) "wasmesh.identity")
  (data (i32.const 64) "x-set-fault")
  (data (i32.const 80) "wasmesh.fault")

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))

  ;; Copies request header (key at $k, $kl bytes) to property ($p, $pl).
  (func $copy (param $k i32) (param $kl i32) (param $p i32) (param $pl i32)
    (if (i32.eqz (call $get_header (i32.const 0) (local.get $k) (local.get $kl)
                                   (i32.const 1024) (i32.const 1028)))
      (then
        (drop (call $set_property (local.get $p) (local.get $pl)
                                  (i32.load (i32.const 1024)) (i32.load (i32.const 1028)))))))

  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ;; Values live only during this call: reuse the heap every time.
    (global.set $heap (i32.const 65536))
    (call $copy (i32.const 16) (i32.const 14) (i32.const 32) (i32.const 16))
    (call $copy (i32.const 64) (i32.const 11) (i32.const 80) (i32.const 13))
    (i32.const 0))
)
