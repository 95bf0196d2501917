//! Background tasks that belong to a service and stop when it stops.

use tokio::task::JoinHandle;

/// Aborts its tasks when dropped, so a service's timers and monitors never outlive it.
#[derive(Default)]
pub struct TaskGuard {
    handles: Vec<JoinHandle<()>>,
}

impl TaskGuard {
    pub fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.handles.push(tokio::spawn(task));
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for handle in &self.handles {
            handle.abort();
        }
    }
}
