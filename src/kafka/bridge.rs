//! The one place sluice meets tokio: a single process-wide tokio runtime on its own
//! thread (`sluice-kafka`), started on first use, that runs rskafka's futures for every
//! shard. Shards hand it whole produce requests (one future per batch, never per
//! record) and get the result back through a oneshot channel, without blocking.
//!
//! Why this works without a lock on the shard: tokio's `Handle::spawn` may be called
//! from any thread (it pushes onto the runtime's injection queue and unparks it), and
//! tokio's oneshot channel is runtime-agnostic: completing it from the tokio thread
//! calls the glommio task's `Waker`, which glommio turns into a cross-thread
//! notification (its foreign-waker queue plus an eventfd), so the shard task resumes
//! on its own thread. glommio sees that queue in its reactor; a shard's driver may be
//! blocked in epoll instead, so the answer also rings the shard's
//! [`Alarm`](crate::runtime::poller::Alarm).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The runtime's handle, set once by the first caller.
static HANDLE: OnceLock<Handle> = OnceLock::new();

/// CPUs the `sluice-kafka` thread may run on, set at start-up by the runtime.
static THREAD_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Where the `sluice-kafka` thread runs. Without this it would inherit the pinning of
/// whichever shard first produced and take that shard's core.
pub fn set_thread_cpus(cpus: Vec<usize>) {
    let _ = THREAD_CPUS.set(cpus);
}

/// Pins the calling thread to `cpus` (best effort: an error keeps the inherited mask).
fn pin_to(cpus: &[usize]) {
    if cpus.is_empty() {
        return;
    }
    // SAFETY: cpu_set_t is plain data; sched_setaffinity(0) applies to this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// The tokio runtime's handle, starting its thread on first use.
fn handle() -> &'static Handle {
    HANDLE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("sluice-kafka".into())
            .spawn(move || {
                pin_to(THREAD_CPUS.get().map_or(&[], Vec::as_slice));
                // A current-thread runtime: one thread is plenty for a client that
                // only waits on sockets, and it keeps the shards' cores for requests.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("build the kafka tokio runtime");
                tx.send(rt.handle().clone())
                    .expect("bridge start-up channel");
                // Runs spawned tasks until the process exits.
                rt.block_on(std::future::pending::<()>());
            })
            .expect("spawn the sluice-kafka thread");
        rx.recv().expect("the kafka runtime started")
    })
}

/// Runs `fut` on the tokio thread; the returned future resolves with its output on
/// whichever executor awaits it.
pub fn run<F>(fut: F) -> Reply<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    // The shard's driver may block in epoll; the alarm makes it see the wake.
    let alarm = crate::runtime::poller::alarm();
    handle().spawn(async move {
        // The receiver may be gone (the request hit its deadline): nothing to do then.
        let _ = tx.send(fut.await);
        if let Some(a) = alarm {
            a.ring();
        }
    });
    Reply(rx)
}

/// The answer of a [`run`] call.
pub struct Reply<T>(oneshot::Receiver<T>);

/// The bridge's task ended without answering (it panicked or the runtime stopped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost;

impl<T> Future for Reply<T> {
    type Output = Result<T, Lost>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| r.map_err(|_| Lost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_foreign_executor() {
        // futures-lite's block_on is a plain thread-parking executor, like a shard in
        // that it is not tokio: the reply must still wake it.
        let got = futures_lite::future::block_on(run(async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            41 + 1
        }));
        assert_eq!(got, Ok(42));
    }

    #[test]
    fn wakes_a_glommio_task() {
        let got = glommio::LocalExecutorBuilder::default()
            // Small, so the locked io_uring memory fits a non-root `ulimit -l`.
            .io_memory(256 * 1024)
            .spawn(|| async { run(async { "from tokio" }).await })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got, Ok("from tokio"));
    }
}
