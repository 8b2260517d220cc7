//! Running the retrain at low priority: the calling thread (and every thread it starts later,
//! which inherits its policy and nice value) gives way to the threads answering requests.

/// How far the retrain thread lowers its priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Nice 19: the answering threads (nice 0) get about 98% of a contended core, and the retrain
    /// still progresses when other programs keep the cores busy.
    Nice,
    /// `SCHED_IDLE` and nice 19: the retrain runs only on cores nothing else wants; any other busy
    /// program on the board (not only the service) can stall it indefinitely.
    Idle,
    /// Unchanged.
    Normal,
}

impl std::str::FromStr for Priority {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nice" => Ok(Priority::Nice),
            "idle" => Ok(Priority::Idle),
            "normal" => Ok(Priority::Normal),
            _ => Err(format!("`{s}`: expected nice, idle or normal")),
        }
    }
}

/// Lowers the calling thread's priority to `p` as far as allowed. Returns what was applied, for
/// the log.
pub fn lower_this_thread(p: Priority) -> String {
    let mut applied = Vec::new();
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread; `param` outlives the call.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            if p != Priority::Normal && libc::setpriority(libc::PRIO_PROCESS, tid, 19) == 0 {
                applied.push("nice 19");
            }
            let param = libc::sched_param { sched_priority: 0 };
            if p == Priority::Idle && libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
                applied.push("SCHED_IDLE");
            }
        }
    }
    if applied.is_empty() {
        "normal priority".to_string()
    } else {
        applied.join(", ")
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread() {
        let other = std::thread::spawn(|| {
            let applied = lower_this_thread(Priority::Idle);
            // SAFETY: querying the calling thread's policy.
            let policy = unsafe { libc::sched_getscheduler(0) };
            (applied, policy)
        })
        .join()
        .unwrap();
        assert!(other.0.contains("SCHED_IDLE"), "{}", other.0);
        assert_eq!(other.1, libc::SCHED_IDLE);
        // SAFETY: as above.
        assert_ne!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
    }
}
