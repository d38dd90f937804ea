//! The runtime the benches run on: two worker threads, as on a gateway (shared by every bench but
//! `libosdp_link`, which runs on one thread).

use tokio::runtime::Runtime;

/// A multi-thread tokio runtime with 2 workers, I/O and time enabled.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
