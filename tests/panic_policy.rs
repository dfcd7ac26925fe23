//! The one policy for a panic in background work (`src/tasks.rs`): the process logs it and exits
//! with status 70, whichever way the work was started. Each case runs in a child process (this
//! test binary again, told by `KEEL_PANIC_CASE` which case to run), since the point is that the
//! whole process ends.

use std::process::Command;
use std::time::Duration;

const CASE: &str = "KEEL_PANIC_CASE";

/// In the child: starts background work that panics, then waits for the process to be ended.
fn run_case(case: &str) {
    match case {
        "thread" => {
            keel::tasks::thread("panicking-thread", || panic!("a bug in a background thread")).expect("a thread");
        }
        "task" | "blocking" => {
            let runtime = tokio::runtime::Runtime::new().expect("a runtime");
            runtime.block_on(async {
                if case == "task" {
                    keel::tasks::task("panicking-task", async { panic!("a bug in a background task") });
                } else {
                    keel::tasks::blocking("panicking-blocking", || panic!("a bug in blocking work")).await;
                }
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
        other => panic!("unknown case {other}"),
    }
    std::thread::sleep(Duration::from_secs(30));
    // Reached only if the policy did not stop the process.
    std::process::exit(0);
}

#[test]
fn a_panic_in_background_work_ends_the_process_with_status_70() {
    if let Ok(case) = std::env::var(CASE) {
        run_case(&case);
        return;
    }
    for case in ["thread", "task", "blocking"] {
        let output = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "a_panic_in_background_work_ends_the_process_with_status_70", "--nocapture"])
            .env(CASE, case)
            .output()
            .expect("the child runs");
        assert_eq!(
            output.status.code(),
            Some(keel::tasks::PANIC_EXIT_STATUS),
            "{case}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
