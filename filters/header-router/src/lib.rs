//! Header-based routing filter (VirtualService matches, weighted and sticky canaries)
//!
//! Pass-through placeholder until its issue lands: the module loads, accepts
//! any configuration and lets every request through.

#[cfg(target_arch = "wasm32")]
mod filter {
    use proxy_wasm::traits::*;
    use proxy_wasm::types::*;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Trace);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
    }}

    struct Root;
    impl Context for Root {}
    impl RootContext for Root {
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Pass))
        }
    }
    struct Pass;
    impl Context for Pass {}
    impl HttpContext for Pass {}
}
