//! Static dispatch of the host's callbacks to a filter's root and HTTP
//! contexts.
//!
//! A filter implements [`Root`] (one per plugin configuration: it owns the
//! compiled configuration) and [`Http`] (one per HTTP stream), and exports
//! the ABI with [`crate::proxy_filter!`]. The exports call the generic
//! functions of [`Contexts`] monomorphised for the filter's types: no trait
//! objects, no hash maps.
//!
//! Contexts live in two small vectors of `(id, slot)` — there are few live
//! contexts per VM (one root per plugin, one per concurrent stream on this
//! worker), so a linear search beats hashing — and are removed with
//! `swap_remove`. During a callback the context is moved out of its slot and
//! put back afterwards, and no reference into the vectors is held while
//! filter code or a host call runs. A host that calls back in the middle of
//! a callback (creating a context, deleting one, or calling the same one)
//! therefore never meets a borrowed structure: a callback to a context that
//! is busy gets the default answer (`Continue`, `true`), and a context
//! deleted while busy is dropped when its callback returns.

use super::types::Action;
use std::cell::UnsafeCell;

/// The root context of a plugin: created by the host with
/// `proxy_on_context_create(id, 0)`, configured, then asked for an HTTP
/// context per stream.
pub trait Root: Sized + 'static {
    /// The filter's per-stream context.
    type Http: Http;

    /// A new root context.
    fn new(context_id: u32) -> Self;

    /// `proxy_on_vm_start`; `false` fails the VM.
    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        true
    }

    /// `proxy_on_configure`; `false` refuses the configuration.
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        true
    }

    /// `proxy_on_tick`, at the period set with `set_tick_period_ms`.
    fn on_tick(&mut self) {}

    /// `proxy_on_queue_ready`: a shared queue this root registered has items.
    fn on_queue_ready(&mut self, _queue_id: u32) {}

    /// `proxy_on_http_call_response` of a call this root dispatched
    /// (`num_headers` 0: the call failed or was reset).
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _num_headers: usize,
        _body_size: usize,
        _num_trailers: usize,
    ) {
    }

    /// `proxy_on_done`: `false` to finish later with `hostcalls::done`.
    fn on_done(&mut self) -> bool {
        true
    }

    /// The context of a new HTTP stream (`None`: the stream is not seen).
    fn create_http(&mut self, context_id: u32) -> Option<Self::Http>;
}

/// The context of one HTTP stream. Dropped at `proxy_on_delete`.
pub trait Http: Sized + 'static {
    /// `proxy_on_request_headers`.
    fn on_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// `proxy_on_request_body`.
    fn on_request_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// `proxy_on_request_trailers`.
    fn on_request_trailers(&mut self, _num_trailers: usize) -> Action {
        Action::Continue
    }
    /// `proxy_on_response_headers`.
    fn on_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// `proxy_on_response_body`.
    fn on_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        Action::Continue
    }
    /// `proxy_on_response_trailers`.
    fn on_response_trailers(&mut self, _num_trailers: usize) -> Action {
        Action::Continue
    }
    /// `proxy_on_http_call_response` of a call this stream dispatched.
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _num_headers: usize,
        _body_size: usize,
        _num_trailers: usize,
    ) {
    }
    /// `proxy_on_log`: the stream is complete (access logging).
    fn on_log(&mut self) {}
    /// `proxy_on_done`: `false` to finish later with `hostcalls::done`.
    fn on_done(&mut self) -> bool {
        true
    }
}

type Slots<T> = Vec<(u32, Option<T>)>;

/// The live contexts of a VM (see the module docs).
pub struct Contexts<R: Root> {
    roots: UnsafeCell<Slots<R>>,
    streams: UnsafeCell<Slots<R::Http>>,
}

// SAFETY: wasm32 without the `atomics` feature has one thread; the static
// is only touched from host callbacks.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<R: Root> Sync for Contexts<R> {}

impl<R: Root> Default for Contexts<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// Moves the context `id` out of its slot (`None`: unknown or busy).
fn take<T>(slots: &UnsafeCell<Slots<T>>, id: u32) -> Option<T> {
    // SAFETY: no other reference into the vector is live (none is ever held
    // across filter code or host calls).
    let v = unsafe { &mut *slots.get() };
    v.iter_mut().find(|(i, _)| *i == id)?.1.take()
}

/// Puts a context back; hands it back if it was deleted meanwhile (the
/// caller drops it, outside any borrow).
#[must_use]
fn put<T>(slots: &UnsafeCell<Slots<T>>, id: u32, ctx: T) -> Option<T> {
    // SAFETY: as in `take`.
    let v = unsafe { &mut *slots.get() };
    match v.iter_mut().find(|(i, _)| *i == id) {
        Some((_, slot)) if slot.is_none() => {
            *slot = Some(ctx);
            None
        }
        _ => Some(ctx),
    }
}

/// Adds a context; hands back one it replaces.
#[must_use]
fn insert<T>(slots: &UnsafeCell<Slots<T>>, id: u32, ctx: T) -> Option<T> {
    // SAFETY: as in `take`.
    let v = unsafe { &mut *slots.get() };
    match v.iter_mut().find(|(i, _)| *i == id) {
        Some((_, slot)) => slot.replace(ctx),
        None => {
            v.push((id, Some(ctx)));
            None
        }
    }
}

/// Removes the context `id`: `Some(ctx)` if it was idle (the caller drops
/// it), `Some(None)` if it was busy, `None` if unknown.
fn remove<T>(slots: &UnsafeCell<Slots<T>>, id: u32) -> Option<Option<T>> {
    // SAFETY: as in `take`.
    let v = unsafe { &mut *slots.get() };
    let at = v.iter().position(|(i, _)| *i == id)?;
    Some(v.swap_remove(at).1)
}

fn contains<T>(slots: &UnsafeCell<Slots<T>>, id: u32) -> bool {
    // SAFETY: as in `take`.
    let v = unsafe { &*slots.get() };
    v.iter().any(|(i, _)| *i == id)
}

impl<R: Root> Contexts<R> {
    /// No contexts.
    pub const fn new() -> Self {
        Contexts {
            roots: UnsafeCell::new(Vec::new()),
            streams: UnsafeCell::new(Vec::new()),
        }
    }

    /// Runs `f` on stream `id`, or answers `default` if it is unknown or busy.
    #[inline]
    fn stream<T>(&self, id: u32, default: T, f: impl FnOnce(&mut R::Http) -> T) -> T {
        let Some(mut ctx) = take(&self.streams, id) else {
            return default;
        };
        let out = f(&mut ctx);
        drop(put(&self.streams, id, ctx));
        out
    }

    /// Runs `f` on root `id`, or answers `default` if it is unknown or busy.
    #[inline]
    fn root<T>(&self, id: u32, default: T, f: impl FnOnce(&mut R) -> T) -> T {
        let Some(mut ctx) = take(&self.roots, id) else {
            return default;
        };
        let out = f(&mut ctx);
        drop(put(&self.roots, id, ctx));
        out
    }

    /// `proxy_on_context_create`: a root when `parent` is 0, else a stream
    /// of root `parent`.
    pub fn create(&self, id: u32, parent: u32) {
        if parent == 0 {
            let root = R::new(id);
            drop(insert(&self.roots, id, root));
        } else if let Some(http) = self.root(parent, None, |r| r.create_http(id)) {
            drop(insert(&self.streams, id, http));
        }
    }

    /// `proxy_on_vm_start`.
    pub fn vm_start(&self, id: u32, size: usize) -> bool {
        refresh_log_level();
        self.root(id, true, |r| r.on_vm_start(size))
    }

    /// `proxy_on_configure`.
    pub fn configure(&self, id: u32, size: usize) -> bool {
        refresh_log_level();
        self.root(id, false, |r| r.on_configure(size))
    }

    /// `proxy_on_tick`.
    pub fn tick(&self, id: u32) {
        refresh_log_level();
        self.root(id, (), |r| r.on_tick())
    }

    /// `proxy_on_queue_ready`.
    pub fn queue_ready(&self, id: u32, queue: u32) {
        self.root(id, (), |r| r.on_queue_ready(queue))
    }

    /// `proxy_on_request_headers`.
    pub fn request_headers(&self, id: u32, n: usize, eos: bool) -> Action {
        self.stream(id, Action::Continue, |s| s.on_request_headers(n, eos))
    }

    /// `proxy_on_request_body`.
    pub fn request_body(&self, id: u32, size: usize, eos: bool) -> Action {
        self.stream(id, Action::Continue, |s| s.on_request_body(size, eos))
    }

    /// `proxy_on_request_trailers`.
    pub fn request_trailers(&self, id: u32, n: usize) -> Action {
        self.stream(id, Action::Continue, |s| s.on_request_trailers(n))
    }

    /// `proxy_on_response_headers`.
    pub fn response_headers(&self, id: u32, n: usize, eos: bool) -> Action {
        self.stream(id, Action::Continue, |s| s.on_response_headers(n, eos))
    }

    /// `proxy_on_response_body`.
    pub fn response_body(&self, id: u32, size: usize, eos: bool) -> Action {
        self.stream(id, Action::Continue, |s| s.on_response_body(size, eos))
    }

    /// `proxy_on_response_trailers`.
    pub fn response_trailers(&self, id: u32, n: usize) -> Action {
        self.stream(id, Action::Continue, |s| s.on_response_trailers(n))
    }

    /// `proxy_on_http_call_response`, to the stream or root that called.
    pub fn http_call_response(&self, id: u32, token: u32, h: usize, b: usize, t: usize) {
        if contains(&self.streams, id) {
            self.stream(id, (), |s| s.on_http_call_response(token, h, b, t))
        } else {
            self.root(id, (), |r| r.on_http_call_response(token, h, b, t))
        }
    }

    /// `proxy_on_log`.
    pub fn log(&self, id: u32) {
        self.stream(id, (), |s| s.on_log())
    }

    /// `proxy_on_done`.
    pub fn done(&self, id: u32) -> bool {
        if contains(&self.streams, id) {
            self.stream(id, true, |s| s.on_done())
        } else {
            self.root(id, true, |r| r.on_done())
        }
    }

    /// `proxy_on_delete`: the context is dropped (now, or when its running
    /// callback returns).
    pub fn delete(&self, id: u32) {
        if let Some(gone) = remove(&self.streams, id) {
            drop(gone);
        } else {
            drop(remove(&self.roots, id));
        }
    }

    /// How many roots and streams are live (tests, diagnostics).
    pub fn len(&self) -> (usize, usize) {
        // SAFETY: as in `take`.
        unsafe { ((*self.roots.get()).len(), (*self.streams.get()).len()) }
    }

    /// Whether no context is live.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

#[cfg(target_arch = "wasm32")]
fn refresh_log_level() {
    super::log::refresh_level();
}

#[cfg(not(target_arch = "wasm32"))]
fn refresh_log_level() {}

/// `_initialize`: runs the module's static constructors, as the reactor
/// start-up of wasi-libc does.
#[cfg(target_arch = "wasm32")]
pub fn initialize() {
    #[cfg(target_os = "wasi")]
    {
        extern "C" {
            fn __wasm_call_ctors();
        }
        // SAFETY: called once by the host before any other export.
        unsafe { __wasm_call_ctors() }
    }
}

/// Exports the Proxy-Wasm ABI v0.2.1 for a filter whose root context is
/// `$root` (a [`Root`]), once, in the glue module (wasm32 only).
///
/// `proxy_filter!(MyRoot);` exports every callback.
/// `proxy_filter!(MyRoot, [request_headers, response_headers, tick]);`
/// exports only the listed ones (besides the start-up and lifecycle exports
/// every module has: `_initialize`, the ABI marker, `proxy_on_memory_allocate`,
/// `proxy_on_context_create`, `proxy_on_vm_start`, `proxy_on_configure`,
/// `proxy_on_delete`). A host does not call a callback the module does not
/// export — proxy-wasm-cpp-host answers for it what the default
/// implementation would (`Continue`; `true` for `on_done`) — so a filter
/// that lists only what it implements saves a call into the VM per unused
/// callback per request, and the code of those exports. The names:
/// `tick`, `queue_ready`, `request_headers`, `request_body`,
/// `request_trailers`, `response_headers`, `response_body`,
/// `response_trailers`, `http_call_response`, `log`, `done`.
#[macro_export]
macro_rules! proxy_filter {
    ($root:ty) => {
        $crate::proxy_filter!(
            $root,
            [
                tick,
                queue_ready,
                request_headers,
                request_body,
                request_trailers,
                response_headers,
                response_body,
                response_trailers,
                http_call_response,
                log,
                done
            ]
        );
    };
    ($root:ty, [$($callback:ident),* $(,)?]) => {
        static __WASMESH_CONTEXTS: $crate::abi::dispatch::Contexts<$root> =
            $crate::abi::dispatch::Contexts::new();

        #[no_mangle]
        pub extern "C" fn _initialize() {
            $crate::abi::dispatch::initialize()
        }
        #[no_mangle]
        pub extern "C" fn proxy_abi_version_0_2_1() {}
        #[no_mangle]
        pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
            $crate::abi::memory::allocate(size)
        }
        #[no_mangle]
        pub extern "C" fn proxy_on_context_create(id: u32, parent: u32) {
            __WASMESH_CONTEXTS.create(id, parent)
        }
        #[no_mangle]
        pub extern "C" fn proxy_on_vm_start(id: u32, size: usize) -> u32 {
            __WASMESH_CONTEXTS.vm_start(id, size) as u32
        }
        #[no_mangle]
        pub extern "C" fn proxy_on_configure(id: u32, size: usize) -> u32 {
            __WASMESH_CONTEXTS.configure(id, size) as u32
        }
        #[no_mangle]
        pub extern "C" fn proxy_on_delete(id: u32) {
            __WASMESH_CONTEXTS.delete(id)
        }
        $($crate::__proxy_export!($callback);)*
    };
}

/// One optional export of [`proxy_filter!`] (an implementation detail).
#[doc(hidden)]
#[macro_export]
macro_rules! __proxy_export {
    (tick) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_tick(id: u32) {
            __WASMESH_CONTEXTS.tick(id)
        }
    };
    (queue_ready) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_queue_ready(id: u32, queue: u32) {
            __WASMESH_CONTEXTS.queue_ready(id, queue)
        }
    };
    (request_headers) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_request_headers(id: u32, n: usize, eos: u32) -> u32 {
            __WASMESH_CONTEXTS.request_headers(id, n, eos != 0) as u32
        }
    };
    (request_body) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_request_body(id: u32, size: usize, eos: u32) -> u32 {
            __WASMESH_CONTEXTS.request_body(id, size, eos != 0) as u32
        }
    };
    (request_trailers) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_request_trailers(id: u32, n: usize) -> u32 {
            __WASMESH_CONTEXTS.request_trailers(id, n) as u32
        }
    };
    (response_headers) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_response_headers(id: u32, n: usize, eos: u32) -> u32 {
            __WASMESH_CONTEXTS.response_headers(id, n, eos != 0) as u32
        }
    };
    (response_body) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_response_body(id: u32, size: usize, eos: u32) -> u32 {
            __WASMESH_CONTEXTS.response_body(id, size, eos != 0) as u32
        }
    };
    (response_trailers) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_response_trailers(id: u32, n: usize) -> u32 {
            __WASMESH_CONTEXTS.response_trailers(id, n) as u32
        }
    };
    (http_call_response) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_http_call_response(
            id: u32,
            token: u32,
            headers: usize,
            body: usize,
            trailers: usize,
        ) {
            __WASMESH_CONTEXTS.http_call_response(id, token, headers, body, trailers)
        }
    };
    (log) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_log(id: u32) {
            __WASMESH_CONTEXTS.log(id)
        }
    };
    (done) => {
        #[no_mangle]
        pub extern "C" fn proxy_on_done(id: u32) -> u32 {
            __WASMESH_CONTEXTS.done(id) as u32
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    type Log = Rc<RefCell<Vec<String>>>;

    type Hook = RefCell<Option<Box<dyn Fn(&str, u32)>>>;

    thread_local! {
        static LOG: Log = Rc::new(RefCell::new(Vec::new()));
        /// What a callback does "through the host" (re-entrant calls).
        static HOOK: Hook = RefCell::new(None);
    }

    fn note(s: String) {
        LOG.with(|l| l.borrow_mut().push(s));
    }
    fn taken() -> Vec<String> {
        LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
    }
    fn hook(what: &str, id: u32) {
        HOOK.with(|h| {
            if let Some(f) = &*h.borrow() {
                f(what, id)
            }
        })
    }

    struct TestRoot {
        id: u32,
        configured: bool,
    }
    struct TestHttp {
        id: u32,
        root: u32,
        headers: usize,
    }

    impl Root for TestRoot {
        type Http = TestHttp;
        fn new(id: u32) -> Self {
            note(format!("root {id} new"));
            TestRoot {
                id,
                configured: false,
            }
        }
        fn on_configure(&mut self, size: usize) -> bool {
            self.configured = size > 0;
            self.configured
        }
        fn on_tick(&mut self) {
            note(format!("root {} tick", self.id));
            hook("tick", self.id);
        }
        fn create_http(&mut self, id: u32) -> Option<TestHttp> {
            self.configured.then(|| TestHttp {
                id,
                root: self.id,
                headers: 0,
            })
        }
    }

    impl Http for TestHttp {
        fn on_request_headers(&mut self, n: usize, eos: bool) -> Action {
            self.headers = n;
            note(format!(
                "{} of root {}: headers {n} {eos}",
                self.id, self.root
            ));
            hook("headers", self.id);
            if eos {
                Action::Pause
            } else {
                Action::Continue
            }
        }
        fn on_log(&mut self) {
            note(format!("{} log {}", self.id, self.headers));
        }
        fn on_done(&mut self) -> bool {
            false
        }
    }

    impl Drop for TestHttp {
        fn drop(&mut self) {
            note(format!("{} dropped", self.id));
        }
    }

    #[test]
    fn lifecycle() {
        let c: Contexts<TestRoot> = Contexts::new();
        c.create(1, 0);
        assert!(c.configure(1, 10));
        c.create(2, 0);
        assert!(!c.configure(2, 0), "root 2 refuses its configuration");
        c.create(3, 1);
        c.create(4, 2); // root 2 creates no stream
        c.create(5, 1);
        c.create(6, 99); // unknown root
        assert_eq!(c.len(), (2, 2));
        assert_eq!(c.request_headers(3, 7, false), Action::Continue);
        assert_eq!(c.request_headers(5, 2, true), Action::Pause);
        assert_eq!(c.request_headers(4, 1, true), Action::Continue);
        assert_eq!(c.response_headers(3, 1, false), Action::Continue);
        c.log(3);
        assert!(!c.done(3), "the stream's own answer");
        assert!(c.done(1), "roots finish by default");
        assert!(c.done(42), "unknown contexts are done");
        c.delete(3);
        c.delete(3);
        c.tick(1);
        assert_eq!(c.len(), (2, 1));
        assert_eq!(
            taken(),
            vec![
                "root 1 new",
                "root 2 new",
                "3 of root 1: headers 7 false",
                "5 of root 1: headers 2 true",
                "3 log 7",
                "3 dropped",
                "root 1 tick"
            ]
        );
        c.delete(5);
        c.delete(1);
        c.delete(2);
        assert!(c.is_empty());
        assert_eq!(taken(), vec!["5 dropped"]);
    }

    #[test]
    fn reentrant_calls_meet_no_borrowed_state() {
        let c: &'static Contexts<TestRoot> = Box::leak(Box::new(Contexts::new()));
        c.create(1, 0);
        assert!(c.configure(1, 1));
        c.create(2, 1);
        taken();
        // While stream 2 handles its headers, the host creates stream 3,
        // calls stream 2 again (busy: default answer), runs stream 3, and
        // deletes stream 2 (dropped when its callback returns).
        HOOK.with(|h| {
            *h.borrow_mut() = Some(Box::new(move |what, id| {
                if what == "headers" && id == 2 {
                    c.create(3, 1);
                    assert_eq!(c.request_headers(2, 9, true), Action::Continue);
                    c.request_headers(3, 1, false);
                    c.delete(2);
                }
                if what == "tick" {
                    // The root is busy: no stream can be created from it.
                    c.create(4, 1);
                    c.create(5, 0);
                }
            }))
        });
        assert_eq!(c.request_headers(2, 5, true), Action::Pause);
        assert_eq!(
            taken(),
            vec![
                "2 of root 1: headers 5 true",
                "3 of root 1: headers 1 false",
                "2 dropped"
            ]
        );
        assert_eq!(c.len(), (1, 1));
        c.tick(1);
        assert_eq!(c.len(), (2, 1));
        assert_eq!(taken(), vec!["root 1 tick", "root 5 new"]);
        HOOK.with(|h| *h.borrow_mut() = None);
    }
}
