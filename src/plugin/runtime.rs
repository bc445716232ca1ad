//! The wasmtime side: one `Engine`, compiled code cached on disk, a fresh `Store`
//! per call with memory and time capped, and the two ABIs.
//!
//! Components implement `prism:generator@0.1.0` (`plugins/wit/generator.wit`) and
//! get the host interface plus a WASI p2 world with no files, network, environment
//! or args; command modules (wasip1) get stdin/stdout/stderr and nothing else. In
//! both, the wall clock reads the request's `now`, the monotonic clock stands still
//! and "random" bytes are a fixed sequence: a plugin's answer depends only on its
//! request and what its capabilities read.

use super::capabilities::Capabilities;
use super::config::PluginDefinition;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, ResourceTable};
use wasmtime::{Config, Engine, Module, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Host bindings generated from `plugins/wit/generator.wit`.
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "plugins/wit",
        world: "generator",
    });
}

use bindings::prism::generator::host as wit;
use bindings::{Generator, GeneratorPre};

/// How often the epoch advances; timeouts are this precise.
const TICK: Duration = Duration::from_millis(5);
/// Cap on what a plugin may write to stderr (kept for error messages and the log).
const STDERR_CAP: usize = 64 << 10;

/// Which ABI a `.wasm` file speaks, told from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abi {
    /// A component implementing the `prism:generator` world.
    Component,
    /// A WASI command module: request on stdin, response on stdout.
    Command,
}

impl Abi {
    /// Reads the preamble: `\0asm` then a module (1) or component (0x0d, layer 1) version.
    pub fn detect(bytes: &[u8]) -> Result<Abi, String> {
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Ok(Abi::Command),
            Some([0, b'a', b's', b'm', 0x0d, 0, 1, 0]) => Ok(Abi::Component),
            Some([0, b'a', b's', b'm', ..]) => Err("unsupported WebAssembly binary version".into()),
            _ => Err("not a WebAssembly binary (no \\0asm header)".into()),
        }
    }

    /// How `prism plugin inspect` names it.
    pub fn describe(self) -> &'static str {
        match self {
            Abi::Component => "component (prism:generator world)",
            Abi::Command => "WASI command module (wasip1: stdin → stdout)",
        }
    }
}

/// The shared engine and linkers; cheap to share, one per process.
pub struct Runtime {
    engine: Engine,
    component_linker: wasmtime::component::Linker<ComponentState>,
    command_linker: wasmtime::Linker<CommandState>,
    cache_dir: Option<PathBuf>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// Slots for concurrent calls: enough for the controller's parallel reconciles.
fn pool() -> wasmtime::PoolingAllocationConfig {
    const SLOTS: u32 = 64;
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(SLOTS)
        .total_core_instances(SLOTS * 4)
        .total_memories(SLOTS * 2)
        .total_tables(SLOTS * 4)
        .max_memories_per_component(2)
        .max_tables_per_component(4)
        .max_memory_size(4 << 30)
        // A slot's pages stay mapped between calls: the pages a call dirtied (found
        // with Linux's PAGEMAP_SCAN where the kernel has it, 6.7 and later) are zeroed
        // with memset instead of madvise, so the next call takes no page faults and no
        // TLB shootdown (a fifth of a warm call's time before).
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

/// Bytes of each plugin memory kept resident between calls (a Rust plugin's stack
/// and small heap fit).
const KEEP_RESIDENT: usize = 2 << 20;

/// Code ready to instantiate.
pub enum Compiled {
    /// A component, pre-linked.
    Component(GeneratorPre<ComponentState>),
    /// A command module, pre-linked.
    Command(wasmtime::InstancePre<CommandState>),
}

/// Where compiled code came from (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    /// Compiled now (and written to the cache, if any).
    Compiled,
    /// Read from the on-disk cache.
    Cache,
}

impl Runtime {
    /// An engine with epoch interruption and the component model; compiled code is
    /// cached under `cache_dir` when given.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Runtime, String> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // Instances come from a pool of pre-reserved slots: a call then costs no
        // mmap/munmap of a fresh 4 GiB reservation (half of a warm call's time).
        // Where the reservation is refused, fall back to allocating per call.
        let mut pooled = config.clone();
        pooled.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool()));
        let engine = match Engine::new(&pooled) {
            Ok(engine) => engine,
            Err(e) => {
                tracing::debug!("pooling allocator unavailable ({e}); allocating per call");
                Engine::new(&config).map_err(|e| format!("starting wasmtime: {e}"))?
            }
        };
        let mut component_linker = wasmtime::component::Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut component_linker)
            .and_then(|_| {
                Generator::add_to_linker::<_, HasSelf<ComponentState>>(&mut component_linker, |s| s)
            })
            .map_err(|e| format!("linking the plugin host: {e}"))?;
        let mut command_linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut command_linker, |s: &mut CommandState| {
            &mut s.wasi
        })
        .map_err(|e| format!("linking WASI: {e}"))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticking, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("prism-plugin-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| format!("starting the plugin timer thread: {e}"))?;
        Ok(Runtime {
            engine,
            component_linker,
            command_linker,
            cache_dir,
            stop_ticker,
        })
    }

    /// Compiles `bytes` (whose SHA-256 is `sha256`), or loads the compiled form from the cache.
    pub fn compile(&self, bytes: &[u8], sha256: &str) -> Result<(Compiled, CompileSource), String> {
        let abi = Abi::detect(bytes)?;
        let cached = self.cache_dir.as_ref().map(|d| {
            d.join(format!(
                "{sha256}-{:016x}.{}",
                self.compatibility_hash(),
                match abi {
                    Abi::Component => "cwasm",
                    Abi::Command => "cmod",
                }
            ))
        });
        if let Some(path) = cached.as_ref().filter(|p| p.is_file()) {
            match self.link_cached(abi, path) {
                Ok(c) => return Ok((c, CompileSource::Cache)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "compiled plugin cache unusable, recompiling: {e}")
                }
            }
        }
        let (compiled, serialized) = match abi {
            Abi::Component => {
                let c =
                    Component::new(&self.engine, bytes).map_err(|e| format!("compiling: {e:#}"))?;
                let s = c.serialize().ok();
                (self.link_component(&c)?, s)
            }
            Abi::Command => {
                let m =
                    Module::new(&self.engine, bytes).map_err(|e| format!("compiling: {e:#}"))?;
                let s = m.serialize().ok();
                (self.link_command(&m)?, s)
            }
        };
        if let (Some(path), Some(data)) = (cached, serialized) {
            if let Err(e) = write_atomically(&path, &data) {
                tracing::warn!(path = %path.display(), "cannot cache compiled plugin: {e}");
            }
        }
        Ok((compiled, CompileSource::Compiled))
    }

    /// A stable hash of wasmtime's version and settings: cached code from another
    /// version or configuration is never loaded.
    fn compatibility_hash(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = crate::digest::Fnv::default();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        h.finish()
    }

    fn link_cached(&self, abi: Abi, path: &Path) -> Result<Compiled, String> {
        match abi {
            Abi::Component => self.link_component(&deserialize_component(&self.engine, path)?),
            Abi::Command => self.link_command(&deserialize_module(&self.engine, path)?),
        }
    }

    fn link_component(&self, c: &Component) -> Result<Compiled, String> {
        let pre = self
            .component_linker
            .instantiate_pre(c)
            .map_err(|e| format!("the component does not fit the prism:generator world: {e:#}"))?;
        GeneratorPre::new(pre)
            .map(Compiled::Component)
            .map_err(|e| format!("the component does not export prism:generator's generate: {e:#}"))
    }

    fn link_command(&self, m: &Module) -> Result<Compiled, String> {
        if m.get_export("_start").is_none() {
            return Err("the module has no _start: build it as a WASI command (a binary crate for wasm32-wasip1)".into());
        }
        self.command_linker
            .instantiate_pre(m)
            .map(Compiled::Command)
            .map_err(|e| format!("the module imports more than WASI preview 1 offers: {e:#}"))
    }

    /// Runs one call in a fresh store; returns the response text or why it failed.
    pub fn call(
        &self,
        compiled: &Compiled,
        def: &PluginDefinition,
        request: &str,
        now_secs: i64,
        caps: Capabilities,
    ) -> (Result<String, String>, Capabilities) {
        let ticks = def.timeout_ms.div_ceil(TICK.as_millis() as u64) + 1;
        let limits = Limits::new(def);
        let stderr = MemoryOutputPipe::new(STDERR_CAP);
        match compiled {
            Compiled::Component(pre) => {
                let wasi = sandbox(now_secs).stderr(stderr.clone()).build();
                let mut store = Store::new(
                    &self.engine,
                    ComponentState {
                        wasi,
                        table: ResourceTable::new(),
                        limits,
                        caps,
                    },
                );
                store.limiter(|s| &mut s.limits);
                store.set_epoch_deadline(ticks);
                let result = pre
                    .instantiate(&mut store)
                    .and_then(|g| g.call_generate(&mut store, request));
                let state = store.into_data();
                let outcome = match result {
                    Ok(Ok(response)) if response.len() > def.max_output_bytes => Err(format!(
                        "the response is {} bytes, over maxOutputBytes ({})",
                        response.len(),
                        def.max_output_bytes
                    )),
                    Ok(Ok(response)) => Ok(response),
                    Ok(Err(message)) => Err(format!("the plugin reported an error: {message}")),
                    Err(e) => Err(explain_failure(&e, def, &state.limits, &stderr)),
                };
                log_stderr(&def.name, &stderr);
                (outcome, state.caps)
            }
            Compiled::Command(pre) => {
                let stdout = MemoryOutputPipe::new(def.max_output_bytes.saturating_add(1));
                let wasi = sandbox(now_secs)
                    .stdin(MemoryInputPipe::new(request.as_bytes().to_vec()))
                    .stdout(stdout.clone())
                    .stderr(stderr.clone())
                    .build_p1();
                let mut store = Store::new(&self.engine, CommandState { wasi, limits });
                store.limiter(|s| &mut s.limits);
                store.set_epoch_deadline(ticks);
                let result = pre.instantiate(&mut store).and_then(|instance| {
                    instance
                        .get_typed_func::<(), ()>(&mut store, "_start")?
                        .call(&mut store, ())
                });
                let state = store.into_data();
                // The exit status, or the trap that ended the module.
                let exit = result.map(|()| 0).or_else(|e| {
                    e.downcast_ref::<wasmtime_wasi::I32Exit>()
                        .map(|x| x.0)
                        .ok_or(e)
                });
                // One byte over the cap fits in the pipe, so a flood is told apart
                // from a response of exactly maxOutputBytes.
                let written = stdout.contents();
                let outcome = match exit {
                    _ if written.len() > def.max_output_bytes => Err(format!(
                        "the response is over maxOutputBytes ({})",
                        def.max_output_bytes
                    )),
                    Ok(0) => Ok(String::from_utf8_lossy(&written).into_owned()),
                    Ok(code) => Err(format!(
                        "the plugin exited with status {code}: {}",
                        stderr_tail(&stderr).unwrap_or_else(|| "(nothing on stderr)".into())
                    )),
                    Err(e) => Err(explain_failure(&e, def, &state.limits, &stderr)),
                };
                log_stderr(&def.name, &stderr);
                (outcome, caps)
            }
        }
    }
}

/// A WASI context with nothing granted: no files, network, env or args; clocks
/// frozen at the request's `now`; fixed "random" bytes.
fn sandbox(now_secs: i64) -> WasiCtxBuilder {
    let mut b = WasiCtx::builder();
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .wall_clock(FrozenClock(now_secs.max(0) as u64))
        .monotonic_clock(StillClock)
        .secure_random(wasmtime_wasi::Deterministic::new(vec![
            0x5a, 0x17, 0xc3, 0x9e,
        ]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![
            0x3c, 0x81, 0x6f, 0x20,
        ]))
        .insecure_random_seed(0);
    b
}

struct FrozenClock(u64);

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(self.0)
    }
}

struct StillClock;

impl wasmtime_wasi::HostMonotonicClock for StillClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        // Still, but not zero: Go's runtime refuses a monotonic clock that reads 0
        // ("fatal error: nanotime returning zero").
        1_000_000_000
    }
}

/// Turns a trap or host error into a message that says what happened and what to do.
fn explain_failure(
    e: &wasmtime::Error,
    def: &PluginDefinition,
    limits: &Limits,
    stderr: &MemoryOutputPipe,
) -> String {
    if let Some(message) = &limits.exceeded {
        return message.clone();
    }
    if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return format!(
            "timed out after {} ms (timeoutMs); the plugin may loop forever: fix it or raise timeoutMs",
            def.timeout_ms
        );
    }
    let tail = stderr_tail(stderr);
    match tail {
        Some(t) => format!("the plugin crashed: {t} ({})", root_cause(e)),
        None => format!("the plugin crashed: {}", root_cause(e)),
    }
}

fn root_cause(e: &wasmtime::Error) -> String {
    match e.downcast_ref::<Trap>() {
        Some(trap) => format!("trap: {trap}"),
        None => format!("{e:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// What stderr says went wrong, if anything: a Go runtime's `panic:` or `fatal error:`
/// line with the one after it (its goroutine trace follows, and is not the message), or
/// else the last lines (a Rust panic message, or a plugin's own error, is there).
fn stderr_tail(stderr: &MemoryOutputPipe) -> Option<String> {
    let text = String::from_utf8_lossy(&stderr.contents()).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return None;
    }
    let go_panic = lines
        .iter()
        .position(|l| l.starts_with("panic: ") || l.starts_with("fatal error: "));
    let summary = match go_panic {
        Some(i) => lines[i..(i + 2).min(lines.len())].join(" "),
        None => lines[lines.len().saturating_sub(3)..].join(" "),
    };
    Some(super::truncate(&summary, 1000).to_string())
}

fn log_stderr(plugin: &str, stderr: &MemoryOutputPipe) {
    let contents = stderr.contents();
    for line in String::from_utf8_lossy(&contents).lines().take(200) {
        tracing::info!(plugin, stderr = true, "{line}");
    }
}

/// Memory and table caps for one store; records why it refused.
pub struct Limits {
    memory_max: usize,
    memory_used: usize,
    exceeded: Option<String>,
    memory_mib: u64,
}

impl Limits {
    fn new(def: &PluginDefinition) -> Limits {
        Limits {
            memory_max: (def.memory_mib as usize) << 20,
            memory_used: 0,
            exceeded: None,
            memory_mib: def.memory_mib,
        }
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_used - current.min(self.memory_used) + desired;
        if total > self.memory_max {
            let message = format!(
                "went over its memory limit of {} MiB (memoryMiB): it asked for {} MiB; \
                 raise memoryMiB if that is expected",
                self.memory_mib,
                total.div_ceil(1 << 20)
            );
            self.exceeded = Some(message.clone());
            return Err(wasmtime::Error::msg(message));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Store data of a component call.
pub struct ComponentState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
    caps: Capabilities,
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Store data of a command-module call.
pub struct CommandState {
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
    limits: Limits,
}

impl wit::Host for ComponentState {
    fn log(&mut self, level: wit::Level, message: String) {
        let level = match level {
            wit::Level::Error => tracing::Level::ERROR,
            wit::Level::Warn => tracing::Level::WARN,
            wit::Level::Info => tracing::Level::INFO,
            wit::Level::Debug => tracing::Level::DEBUG,
        };
        self.caps.log(level, &message);
    }

    fn read_file(
        &mut self,
        repo_url: String,
        revision: String,
        path: String,
    ) -> Result<Vec<u8>, String> {
        self.caps.read_file(&repo_url, &revision, &path)
    }

    fn list_files(
        &mut self,
        repo_url: String,
        revision: String,
        glob: String,
    ) -> Result<Vec<String>, String> {
        self.caps.list_files(&repo_url, &revision, &glob)
    }

    fn list_refs(&mut self, repo_url: String, pattern: String) -> Result<Vec<wit::GitRef>, String> {
        self.caps.list_refs(&repo_url, &pattern).map(|refs| {
            refs.into_iter()
                .map(|r| wit::GitRef {
                    name: r.name,
                    kind: r.kind.to_string(),
                    sha: r.sha,
                })
                .collect()
        })
    }

    fn http_get(
        &mut self,
        url: String,
        headers: Vec<(String, String)>,
    ) -> Result<wit::HttpResponse, String> {
        self.caps
            .http_get(&url, &headers)
            .map(|r| wit::HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
    }
}

/// Loads compiled code this host wrote to its cache.
#[allow(unsafe_code)]
fn deserialize_component(engine: &Engine, path: &Path) -> Result<Component, String> {
    // SAFETY: wasmtime runs deserialized code as native code without re-validating it.
    // The file is one this host serialized into its own cache directory, named by the
    // source's SHA-256 and this engine's compatibility hash, and wasmtime refuses files
    // from another version or configuration. The cache directory must be writable only
    // by Prism (as a compiler cache is); that is documented with --cache-dir.
    unsafe { Component::deserialize_file(engine, path) }.map_err(|e| format!("{e:#}"))
}

/// Loads a compiled command module this host wrote to its cache.
#[allow(unsafe_code)]
fn deserialize_module(engine: &Engine, path: &Path) -> Result<Module, String> {
    // SAFETY: as for `deserialize_component`.
    unsafe { Module::deserialize_file(engine, path) }.map_err(|e| format!("{e:#}"))
}

/// Writes via a temporary file and a rename, so a reader never sees half a file.
fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A name no other writer uses: the finished file may be mapped by a reader, so it
    // is never written in place.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}
