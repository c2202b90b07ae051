//! Executors and shard lifecycle: CPU placement, listener start-up checks, one glommio
//! executor per shard, signals, and graceful shutdown.

pub mod poller;
pub mod server;
pub mod shard;
pub mod socket;

use std::cell::Cell;
use std::net::{SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use crate::components::inputs::InputKind;
use crate::config::Config;
use crate::http::Limits;
use crate::metrics::Registry;
use crate::pipeline::Pipeline;

use server::{Routes, Service};
use shard::{Closing, Global, Shard};

/// How often a shard expires deadlines and checks for shutdown: a twentieth of the
/// input's request `timeout` (a 408 is late by 5% at most), within these bounds. Each
/// tick makes the shard visit glommio's reactor (its timer), which stalls the requests
/// that arrive meanwhile: at 5 ms ticks those visits set sluice's p99 at 50k req/s.
const TICK_MIN: Duration = Duration::from_millis(1);
const TICK_MAX: Duration = Duration::from_millis(50);
/// At most this often a shard hands memory freed by idle connections back to the OS.
const RELEASE_EVERY: Duration = Duration::from_secs(1);
/// Smallest and largest io_uring buffer memory per shard.
const MIN_IO_MEMORY: usize = 64 * 1024;
const MAX_IO_MEMORY: usize = 2 * 1024 * 1024;

/// A listener to open on every shard.
#[derive(Clone)]
struct ListenerPlan {
    addr: SocketAddr,
    /// Serves the service endpoints (`/ping`, `/metrics`, ...).
    service: bool,
    /// Serves the input.
    input: bool,
}

/// Runs the config until a shutdown signal; returns the process exit code.
pub fn run(config: Config) -> i32 {
    crate::log::init(&config.logger);
    match start(config) {
        Ok(code) => code,
        Err(msg) => {
            crate::error!(msg);
            eprintln!("sluice: {msg}");
            1
        }
    }
}

fn start(config: Config) -> Result<i32, String> {
    // Installed before anything listens: a SIGTERM that follows the start-up line must
    // reach the graceful shutdown, not the default action that kills the process.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let cpus = placement(&config)?;
    // The Kafka client thread goes to cores no shard uses, if this process has any.
    let allowed = allowed_cpus();
    let spare: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| !cpus.contains(c))
        .collect();
    crate::kafka::bridge::set_thread_cpus(if spare.is_empty() { allowed } else { spare });
    let (plans, probes) = listeners(&config)?;
    // Every shard's listeners are bound here, while the probes hold the ports: the
    // addresses logged below are then this process's alone (a port 0 picked by the
    // kernel cannot be taken by another process between the probe and the bind).
    let bound = cpus
        .iter()
        .map(|_| {
            plans
                .iter()
                .map(|p| match bind_reuseport(p.addr) {
                    Ok(l) => Ok((p.clone(), l)),
                    Err(e) => Err(format!("cannot listen on {}: {e}", p.addr)),
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(probes);
    let io_memory = config
        .runtime
        .io_memory_bytes
        .unwrap_or_else(|| io_memory_for(cpus.len()));

    let global = Arc::new(Global::default());
    let metrics = Registry::default();
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();
    let mut handles = Vec::new();
    for ((index, cpu), listeners) in cpus.iter().copied().enumerate().zip(bound) {
        let (config, global, metrics, ready) = (
            config.clone(),
            global.clone(),
            metrics.clone(),
            ready_tx.clone(),
        );
        let builder = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("sluice-shard-{index}"))
            .io_memory(io_memory)
            // glommio's own spin when its run queue is empty: long enough for the
            // poller's reactor visit (a timer due 1 us after it is set) to fire without
            // a sleep, short against any real wait.
            .spin_before_park(Duration::from_micros(10))
            // Not 100 ms: the driver decides when the reactor runs (`REACTOR_EVERY`).
            .preempt_timer(poller::PREEMPT_AFTER);
        let handle = builder
            .spawn(move || {
                poller::Counted(shard_main(index, config, listeners, global, metrics, ready))
            })
            .map_err(|e| format!("cannot start shard {index} on CPU {cpu}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..cpus.len() {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a shard stopped during start-up".into()),
        }
    }
    let addrs: Vec<String> = plans.iter().map(|p| p.addr.to_string()).collect();
    let cpu_list: Vec<String> = cpus.iter().map(usize::to_string).collect();
    crate::info!(
        format!("listening on {}", addrs.join(", ")),
        "address" => addrs.join(","),
        "shards" => cpus.len(),
        "cpus" => cpu_list.join(","),
    );

    if signals.forever().next().is_some() {
        global.shutdown.store(true, Ordering::Release);
    }
    crate::info!("shutting down", "timeout" => format!("{:?}", config.shutdown_timeout.0));
    let deadline = Instant::now() + config.shutdown_timeout.0;
    while global.drained.load(Ordering::Acquire) < cpus.len() {
        if Instant::now() >= deadline {
            crate::error!(
                "shutdown timeout reached with requests in flight; abandoning them".to_string()
            );
            return Ok(1);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // Shards end their own loops once drained; joining them is quick.
    for h in handles {
        let _ = h.join();
    }
    Ok(if global.abandoned.load(Ordering::Acquire) {
        1
    } else {
        0
    })
}

async fn shard_main(
    index: usize,
    config: Config,
    listeners: Vec<(ListenerPlan, StdListener)>,
    global: Arc<Global>,
    metrics: Registry,
    ready: mpsc::Sender<Result<usize, String>>,
) {
    poller::set_spin(
        config
            .runtime
            .spin_before_park
            .map_or(poller::DEFAULT_SPIN, |d| d.0),
    );
    let pipeline = match Pipeline::build(&config, &metrics) {
        Ok(p) => Rc::new(p),
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let shard = Rc::new(Shard {
        index,
        txns: Default::default(),
        date: Default::default(),
        metrics,
        closing: Closing::default(),
        global: global.clone(),
        released: Cell::new(false),
    });
    let InputKind::HttpServer(input_conf) = &config.input.kind;
    let mut tasks = Vec::new();
    for (plan, listener) in listeners {
        let routes = Rc::new(Routes {
            service: plan.service.then(|| Service {
                root_path: config.http.root_path.clone(),
                pipeline: pipeline.clone(),
            }),
            input: plan.input.then(|| pipeline.clone()),
            limits: if plan.input {
                input_conf.limits()
            } else {
                Limits::default()
            },
        });
        tasks.push(poller::spawn(server::serve(
            shard.clone(),
            listener,
            routes,
        )));
    }
    let _ = ready.send(Ok(index));

    // The shard's tick: expire request deadlines, refresh the Date header, return idle
    // memory, notice shutdown.
    let tick = (input_conf.timeout.0 / 20).clamp(TICK_MIN, TICK_MAX);
    let mut last_trim = Instant::now();
    loop {
        poller::sleep(tick).await;
        let now = Instant::now();
        shard.date.refresh();
        shard.txns.expire(now);
        if shard.released.get() && now - last_trim >= RELEASE_EVERY {
            // Buffers freed by idle connections stay in malloc's free lists (RSS)
            // until trimmed; this returns their whole pages.
            shard.released.set(false);
            last_trim = now;
            // SAFETY: malloc_trim only releases free memory; it is thread-safe.
            unsafe { libc::malloc_trim(0) };
        }
        if global.shutting_down() && !shard.closing.is_closed() {
            shard.closing.close();
        }
        if shard.closing.is_closed() && shard.txns.is_empty() {
            break;
        }
    }
    for t in tasks {
        t.await;
    }
    global.drained.fetch_add(1, Ordering::AcqRel);
}

/// Every shard binds the same address with SO_REUSEPORT (the kernel spreads
/// connections across them); SO_REUSEADDR lets a restart bind past TIME_WAIT.
fn bind_reuseport(addr: SocketAddr) -> std::io::Result<StdListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // Accepted with non-blocking `accept4` calls, in the shard's poller.
    socket.set_nonblocking(true)?;
    // Requests and answers are small and must leave at once. Accepted sockets inherit
    // it (`Socket::wrap`), which saves a `setsockopt` per connection.
    socket.set_nodelay(true)?;
    Ok(socket.into())
}

/// Pending connections per shard listener.
const LISTEN_BACKLOG: i32 = 4096;

/// The CPUs shards run on, one entry per shard.
fn placement(config: &Config) -> Result<Vec<usize>, String> {
    let allowed = allowed_cpus();
    let cpus = if config.runtime.cpus.is_empty() {
        allowed.clone()
    } else {
        for c in &config.runtime.cpus {
            if !allowed.contains(c) {
                return Err(format!(
                    "runtime.cpus names CPU {c}, which this process may not use (allowed: {allowed:?})"
                ));
            }
        }
        config.runtime.cpus.clone()
    };
    let shards = if config.runtime.shards == 0 {
        cpus.len()
    } else {
        config.runtime.shards
    };
    Ok((0..shards).map(|i| cpus[i % cpus.len()]).collect())
}

/// CPUs in this process's affinity mask (what `taskset` allows).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for pid 0 (this thread).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect();
            if !cpus.is_empty() {
                return cpus;
            }
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// io_uring buffer memory per shard: glommio locks about 3x this per executor, so
/// size it to fit every shard under `ulimit -l`.
fn io_memory_for(shards: usize) -> usize {
    // SAFETY: getrlimit fills a plain struct.
    let limit = unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) == 0 {
            r.rlim_cur
        } else {
            0
        }
    };
    let per_shard = if limit == libc::RLIM_INFINITY {
        MAX_IO_MEMORY
    } else {
        (limit as usize / shards.max(1)) / 4
    };
    per_shard.clamp(MIN_IO_MEMORY, MAX_IO_MEMORY)
}

/// The listeners to open on every shard, each checked for another process already
/// serving it, with a port 0 resolved to the port the kernel picked (so all shards
/// share it); and a probe holding each port until the shards' listeners are bound (see
/// [`resolve_and_probe`]).
fn listeners(config: &Config) -> Result<(Vec<ListenerPlan>, Vec<socket2::Socket>), String> {
    let InputKind::HttpServer(input) = &config.input.kind;
    let mut plans: Vec<ListenerPlan> = Vec::new();
    let mut probes = Vec::new();
    if config.http.enabled || input.address.is_empty() {
        if !config.http.enabled {
            return Err("input http_server has no address and http.enabled is false".into());
        }
        let (addr, probe) = resolve_and_probe(&config.http.address, "http.address")?;
        probes.push(probe);
        plans.push(ListenerPlan {
            addr,
            service: true,
            input: input.address.is_empty(),
        });
    }
    if !input.address.is_empty() {
        let (addr, probe) = resolve_and_probe(&input.address, "input.http_server.address")?;
        probes.push(probe);
        plans.push(ListenerPlan {
            addr,
            service: false,
            input: true,
        });
    }
    Ok((plans, probes))
}

/// Binds once without SO_REUSEPORT: if another process (with or without SO_REUSEPORT)
/// already listens on the address, the kernel refuses, and we exit instead of silently
/// sharing the port with it. The probe never listens and has SO_REUSEADDR, so the
/// shards' SO_REUSEPORT listeners can bind beside it while it holds the port.
fn resolve_and_probe(address: &str, field: &str) -> Result<(SocketAddr, socket2::Socket), String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let addr = address
        .to_socket_addrs()
        .map_err(|e| format!("{field}: bad address {address:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{field}: address {address:?} resolves to nothing"))?;
    let cannot = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("{field}: {addr} is already in use by another process")
        } else {
            format!("{field}: cannot listen on {addr}: {e}")
        }
    };
    let probe = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(cannot)?;
    probe.set_reuse_address(true).map_err(cannot)?;
    probe.bind(&addr.into()).map_err(cannot)?;
    let bound = probe
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| format!("{field}: cannot read the address bound for {addr}"))?;
    Ok((bound, probe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_sockets_inherit_no_delay_from_the_listener() {
        let listener = bind_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
