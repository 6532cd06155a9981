//! `volsafe schedule`: runs on a seconds schedule against the real daemon,
//! jobs sharing a volume, SIGTERM mid-stream, /metrics, the failure
//! notification, drills after backups and on their own cron, SIGHUP with a
//! broken config, and --check-config.
//!
//! Every scheduler is a [`Scheduler`] guard: it has a deadline and is
//! killed on drop, whatever the test did.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::fixtures;

/// The longest any scheduler in these tests may live.
const DEADLINE: Duration = Duration::from_secs(240);

/// A running `volsafe schedule`; killed on drop.
struct Scheduler {
    child: Child,
    stderr: Arc<Mutex<String>>,
    deadline: Instant,
}

impl Scheduler {
    fn start(config: &Path, status: Option<SocketAddr>) -> Scheduler {
        Scheduler::start_with_env(config, status, &[])
    }

    fn start_with_env(
        config: &Path,
        status: Option<SocketAddr>,
        env: &[(&str, &str)],
    ) -> Scheduler {
        let status_arg = status.map(|a| a.to_string());
        let mut args = vec!["schedule", "--config", path_str(config)];
        if let Some(a) = &status_arg {
            args.extend(["--status-addr", a.as_str()]);
        }
        let mut cmd = volsafe_command(&args);
        cmd.stdout(Stdio::null());
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn volsafe schedule");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Scheduler {
            child,
            stderr,
            deadline: Instant::now() + DEADLINE,
        }
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `cond` holds on the log (or anything else), failing
    /// with the log on timeout or if the scheduler died.
    fn wait(&mut self, secs: u64, what: &str, mut cond: impl FnMut(&str) -> bool) {
        let until = (Instant::now() + Duration::from_secs(secs)).min(self.deadline);
        loop {
            let log = self.log();
            if cond(&log) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("scheduler exited ({status}) while waiting for {what}\n{log}");
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {what}\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    /// Sends SIGTERM and returns the exit code once it has exited.
    fn terminate(&mut self, secs: u64) -> Option<i32> {
        self.signal("-TERM");
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                return status.code();
            }
            assert!(
                Instant::now() < until,
                "scheduler did not exit after SIGTERM\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("schedule.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `GET path` with a bare TcpStream; the whole response.
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to the status address");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// The body of /metrics, or nothing while the scheduler is not listening
/// yet.
fn metrics_if_up(addr: SocketAddr) -> String {
    if TcpStream::connect(addr).is_err() {
        return String::new();
    }
    http_get(addr, "/metrics")
}

fn sidecars(dest: &Path, volume: &str) -> usize {
    files_under(&dest.join(daemon_name()).join(volume))
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".tar.zst.json"))
        .count()
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// The value of the sample line starting with `prefix` in /metrics.
fn sample(metrics: &str, prefix: &str) -> f64 {
    let line = metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// Every 2 seconds: archives appear, retention keeps 2, and /metrics says
/// what happened.
#[test]
fn every_two_seconds_produces_archives_and_metrics() {
    let volume = Volume::new("sched");
    fill(&volume, "echo hello > /v/f");
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "grace = \"30s\"\n[defaults]\nno_encryption = true\nkeep_last = 2\ntimezone = \"UTC\"\n\n\
             [[job]]\nname = \"quick\"\nvolumes = [\"{}\"]\ncron = \"*/2 * * * * *\"\nto = \"{}\"\n",
            volume.name(),
            path_str(dest.path())
        ),
    );
    let addr = free_addr();
    let mut s = Scheduler::start(&config, Some(addr));
    s.wait(120, "three finished runs", |log| {
        count(log, "run finished") >= 3
    });

    let health = http_get(addr, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let metrics = http_get(addr, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let labels = format!("{{job=\"quick\",volume=\"{}\"}}", volume.name());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = sample(
        &metrics,
        &format!("volsafe_last_success_timestamp_seconds{labels}"),
    );
    assert!(
        now - last < 60.0 && last <= now + 1.0,
        "last success {last}, now {now}"
    );
    assert!(sample(&metrics, &format!("volsafe_last_archive_bytes{labels}")) > 0.0);
    assert!(sample(&metrics, &format!("volsafe_last_duration_seconds{labels}")) > 0.0);
    assert_eq!(
        sample(&metrics, &format!("volsafe_consecutive_failures{labels}")),
        0.0
    );
    assert_eq!(
        sample(&metrics, "volsafe_stop_window_seconds{job=\"quick\"}"),
        0.0
    );
    let next = sample(
        &metrics,
        "volsafe_next_run_timestamp_seconds{job=\"quick\"}",
    );
    assert!(
        next > now - 5.0 && next < now + 10.0,
        "next run {next}, now {now}"
    );
    for name in [
        "volsafe_last_success_timestamp_seconds",
        "volsafe_next_run_timestamp_seconds",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} gauge")),
            "{metrics}"
        );
        assert!(metrics.contains(&format!("# HELP {name} ")), "{metrics}");
    }

    assert_eq!(s.terminate(60), Some(0), "{}", s.log());
    // Pruned after each success: never more than keep_last once done.
    assert_eq!(sidecars(dest.path(), volume.name()), 2, "{}", s.log());
    assert!(s.log().contains("pruned"), "{}", s.log());
    assert_no_leftovers(volume.name());
}

/// Two jobs on one volume never overlap, hooks included: the pre-backup
/// hook of a container writes start, sleeps, writes end.
#[test]
fn two_jobs_on_one_volume_never_overlap() {
    let volume = Volume::new("overlap");
    fill(&volume, "echo data > /v/f");
    let name = unique_name("hook");
    let mount = format!("{}:/data", volume.name());
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        &mount,
        "--label",
        "volsafe.pre-backup=echo start >> /tmp/h; sleep 3; echo end >> /tmp/h",
        test_image(),
        "sleep",
        "3600",
    ]);
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job = |n: &str| {
        format!(
            "[[job]]\nname = \"{n}\"\nvolumes = [\"{}\"]\ncron = \"*/2 * * * * *\"\n",
            volume.name()
        )
    };
    let config = write_config(
        dir.path(),
        &format!(
            "parallel = 2\n[defaults]\nno_encryption = true\nskip_check = true\ntimezone = \"UTC\"\nto = \"{}\"\n\n{}\n{}",
            path_str(dest.path()),
            job("one"),
            job("two")
        ),
    );
    let mut s = Scheduler::start(&config, None);
    s.wait(120, "both jobs to finish a run", |log| {
        log.lines()
            .any(|l| l.contains("run finished") && l.contains("job=one"))
            && log
                .lines()
                .any(|l| l.contains("run finished") && l.contains("job=two"))
    });
    assert!(s.log().contains("waiting for another job"), "{}", s.log());
    assert_eq!(s.terminate(60), Some(0), "{}", s.log());

    let h = docker_ok(&["exec", &name, "cat", "/tmp/h"]);
    let lines: Vec<&str> = h.lines().collect();
    assert!(lines.len() >= 4, "{h}");
    // The run going at SIGTERM finished within the grace period.
    assert_eq!(lines.last(), Some(&"end"), "{h}\n{}", s.log());
    for (i, l) in lines.iter().enumerate() {
        let want = if i % 2 == 0 { "start" } else { "end" };
        assert_eq!(*l, want, "hooks overlapped:\n{h}\n{}", s.log());
    }
    assert_no_leftovers(volume.name());
}

/// SIGTERM once the stream has started, with no grace period: the backup
/// is aborted cleanly, containers run again, exit 0.
#[test]
fn sigterm_mid_stream_aborts_cleanly_after_the_grace_period() {
    let volume = Volume::new("schedterm");
    fill(&volume, &fixtures::random_file(400));
    let user = container_using(&volume, true);
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = AgeKey::new();
    let config = write_config(
        dir.path(),
        &format!(
            "grace = \"0s\"\n[[job]]\nname = \"big\"\nvolumes = [\"{}\"]\ncron = \"*/2 * * * * *\"\n\
             to = \"{}\"\nrecipients = [\"{}\"]\nstop_containers = true\nskip_check = true\n",
            volume.name(),
            path_str(dest.path()),
            key.recipient
        ),
    );
    let mut s = Scheduler::start(&config, None);
    let partial = || {
        files_under(dest.path())
            .iter()
            .any(|p| p.to_string_lossy().ends_with(".partial"))
    };
    s.wait(120, "the partial archive", |_| partial());
    assert_eq!(s.terminate(120), Some(0), "{}", s.log());
    let log = s.log();
    assert!(log.contains("grace period over"), "{log}");
    let running = docker_ok(&["inspect", "-f", "{{.State.Running}}", &user]);
    assert_eq!(running.trim(), "true", "container left stopped\n{log}");
    assert!(!partial(), "partial archive left\n{log}");
    assert_eq!(sidecars(dest.path(), volume.name()), 0, "{log}");
    assert_no_leftovers(volume.name());
}

/// A receiver of one notification on a loopback port: the port, and the
/// request's head and body once it came.
fn notification_receiver() -> (u16, std::sync::mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut r = BufReader::new(conn.try_clone().unwrap());
        let mut head = String::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
    });
    (port, rx)
}

/// A failed run POSTs JSON to notify_url.
#[test]
fn a_failed_run_notifies() {
    let missing = Volume::reserve("absent");
    let (port, rx) = notification_receiver();
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[job]]\nname = \"broken\"\nvolumes = [\"{}\"]\ncron = \"*/2 * * * * *\"\nto = \"{}\"\n\
             no_encryption = true\nskip_check = true\nnotify_url = \"http://127.0.0.1:{port}/volsafe\"\n",
            missing.name(),
            path_str(dest.path())
        ),
    );
    let mut s = Scheduler::start(&config, None);
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("no notification\n{}", s.log()));
    assert!(head.starts_with("POST /volsafe HTTP/1.1"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["job"], "broken");
    assert_eq!(v["kind"], "backup");
    assert_eq!(v["volumes"][0], missing.name());
    assert_eq!(v["daemon"], daemon_name());
    assert!(v["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{v}");
    assert!(v["host"].as_str().is_some_and(|h| !h.is_empty()), "{v}");
    let err = v["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(err.contains(missing.name()), "{v}");
    // The scheduler is still alive after the failure.
    s.wait(10, "the failure in the log", |log| {
        log.contains("run failed")
    });
    assert_eq!(s.terminate(60), Some(0), "{}", s.log());
    assert!(!missing.exists(), "the missing volume was created");
}

/// `drill = true`: every backup is followed by a drill of the new archive
/// with the job's identity; /metrics says it passed and how long the
/// restore took; after SIGTERM no scratch volume or helper is left.
#[test]
fn drill_after_each_backup_shows_in_metrics_and_leaves_nothing() {
    let volume = Volume::new("scheddrill");
    let _scratch = ScratchGuard(volume.name().to_owned());
    fill(
        &volume,
        "echo hello > /v/f; mkdir /v/d; ln -s ../f /v/d/link",
    );
    let key = AgeKey::new();
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "grace = \"30s\"\n[[job]]\nname = \"drilled\"\nvolumes = [\"{}\"]\ncron = \"*/2 * * * * *\"\n\
             timezone = \"UTC\"\nto = \"{}\"\nrecipients = [\"{}\"]\ndrill_identity = \"{}\"\n\
             drill = true\nkeep_last = 2\nskip_check = true\n",
            volume.name(),
            path_str(dest.path()),
            key.recipient,
            key.identity()
        ),
    );
    let addr = free_addr();
    let mut s = Scheduler::start(&config, Some(addr));
    let labels = format!("{{job=\"drilled\",volume=\"{}\"}}", volume.name());
    let passed = format!("volsafe_drill_success{labels} 1");
    let rto = format!("volsafe_drill_rto_seconds{labels} ");
    let mut metrics = String::new();
    s.wait(180, "a passed drill in /metrics", |_| {
        metrics = metrics_if_up(addr);
        metrics.lines().any(|l| l == passed) && metrics.contains(&rto)
    });
    assert!(sample(&metrics, &rto) > 0.0, "{metrics}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = sample(
        &metrics,
        &format!("volsafe_drill_last_timestamp_seconds{labels}"),
    );
    assert!(
        now - last < 60.0 && last <= now + 1.0,
        "last drill {last}, now {now}"
    );
    for name in [
        "volsafe_drill_last_timestamp_seconds",
        "volsafe_drill_success",
        "volsafe_drill_rto_seconds",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {name} gauge")),
            "{metrics}"
        );
        assert!(metrics.contains(&format!("# HELP {name} ")), "{metrics}");
    }

    assert_eq!(s.terminate(90), Some(0), "{}", s.log());
    let log = s.log();
    assert!(log.contains("drill finished"), "{log}");
    assert!(!log.contains("drill failed"), "{log}");
    assert_eq!(
        scratch_volumes(volume.name()),
        Vec::<String>::new(),
        "{log}"
    );
    assert_no_leftovers(volume.name());
}

/// `drill_cron`: a drill that fails (there is no archive to drill) is
/// logged, shows as 0 in /metrics and is notified with kind "drill"; the
/// scheduler goes on.
#[test]
fn a_failed_scheduled_drill_notifies_and_the_scheduler_goes_on() {
    let volume = Volume::new("drillnone");
    let _scratch = ScratchGuard(volume.name().to_owned());
    let (port, rx) = notification_receiver();
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The backups are yearly: only drills run during the test.
    let config = write_config(
        dir.path(),
        &format!(
            "[[job]]\nname = \"nodrill\"\nvolumes = [\"{}\"]\ncron = \"0 0 1 1 *\"\ntimezone = \"UTC\"\n\
             to = \"{}\"\nno_encryption = true\ndrill_cron = \"*/2 * * * * *\"\n\
             notify_url = \"http://127.0.0.1:{port}/drills\"\n",
            volume.name(),
            path_str(dest.path())
        ),
    );
    let addr = free_addr();
    let mut s = Scheduler::start(&config, Some(addr));
    let (head, body) = rx
        .recv_timeout(Duration::from_secs(90))
        .unwrap_or_else(|_| panic!("no notification\n{}", s.log()));
    assert!(head.starts_with("POST /drills HTTP/1.1"), "{head}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["job"], "nodrill");
    assert_eq!(v["kind"], "drill");
    assert_eq!(v["volumes"][0], volume.name());
    assert_eq!(v["daemon"], daemon_name());
    // The volume's own drill failed (its report names the problem).
    assert_eq!(v["errors"][0]["volume"], volume.name(), "{v}");
    assert!(
        !v["errors"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{v}"
    );

    let failed = format!(
        "volsafe_drill_success{{job=\"nodrill\",volume=\"{}\"}} 0",
        volume.name()
    );
    s.wait(30, "the failed drill in /metrics", |_| {
        metrics_if_up(addr).lines().any(|l| l == failed)
    });
    s.wait(30, "a second failed drill", |log| {
        count(log, "drill failed") >= 2
    });
    let metrics = http_get(addr, "/metrics");
    // Nothing was backed up: no backup numbers, and no RTO.
    assert!(
        !metrics.contains("volsafe_last_duration_seconds{"),
        "{metrics}"
    );
    assert!(!metrics.contains("volsafe_drill_rto_seconds{"), "{metrics}");
    assert_eq!(s.terminate(60), Some(0), "{}", s.log());
    assert_eq!(scratch_volumes(volume.name()), Vec::<String>::new());
    assert_no_leftovers(volume.name());
}

/// SIGHUP with a broken file keeps the old config; a good one is taken.
#[test]
fn sighup_with_a_broken_config_keeps_the_old_one() {
    let volume = Volume::new("hup");
    fill(&volume, "echo x > /v/x");
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let good = format!(
        "[[job]]\nname = \"first\"\nvolumes = [\"{}\"]\ncron = \"*/2 * * * * *\"\nto = \"{}\"\n\
         no_encryption = true\nskip_check = true\n",
        volume.name(),
        path_str(dest.path())
    );
    let config = write_config(dir.path(), &good);
    let mut s = Scheduler::start(&config, None);
    s.wait(60, "a first run", |log| count(log, "run finished") >= 1);

    write_config(dir.path(), &good.replace("cron =", "crom ="));
    s.signal("-HUP");
    s.wait(30, "the refused reload", |log| {
        log.contains("config not reloaded")
    });
    assert!(s.log().contains("line 4"), "{}", s.log());
    let before = count(&s.log(), "run finished");
    s.wait(60, "runs to go on with the old config", |log| {
        count(log, "run finished") >= before + 2
    });

    write_config(
        dir.path(),
        &good.replace("name = \"first\"", "name = \"second\""),
    );
    s.signal("-HUP");
    s.wait(30, "the reload", |log| log.contains("config reloaded"));
    s.wait(60, "a run of the new job", |log| {
        log.lines()
            .any(|l| l.contains("run finished") && l.contains("job=second"))
    });
    assert_eq!(s.terminate(60), Some(0), "{}", s.log());
}

/// A daemon that cannot be reached fails the run, not the scheduler.
#[test]
fn an_unreachable_daemon_is_not_fatal() {
    let dest = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[job]]\nname = \"nodaemon\"\nvolumes = [\"vol\"]\ncron = \"*/2 * * * * *\"\n\
             to = \"{}\"\nno_encryption = true\n",
            path_str(dest.path())
        ),
    );
    // Nothing listens on the discard port of loopback.
    let mut s = Scheduler::start_with_env(&config, None, &[("DOCKER_HOST", "tcp://127.0.0.1:9")]);
    s.wait(60, "two failed runs", |log| count(log, "run failed") >= 2);
    assert!(
        s.log().contains("giving up until the next scheduled run"),
        "{}",
        s.log()
    );
    assert_eq!(s.terminate(60), Some(0), "{}", s.log());
}

#[test]
fn check_config_prints_next_runs_or_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[defaults]\nto = \"/backups\"\nno_encryption = true\n\n\
         [[job]]\nname = \"nightly\"\nvolumes = [\"pgdata\"]\ncron = \"30 2 * * *\"\ntimezone = \"Europe/Berlin\"\n",
    );
    let run = volsafe(&["schedule", "--config", path_str(&config), "--check-config"]);
    run.assert_ok();
    assert!(
        run.stdout
            .contains("job nightly: 30 2 * * * (Europe/Berlin)"),
        "{run}"
    );
    let times: Vec<&str> = run.stdout.lines().filter(|l| l.starts_with("  ")).collect();
    assert_eq!(times.len(), 5, "{run}");
    for t in times {
        let t = t.trim();
        assert!(
            t.contains(" 02:30:00 +01:00")
                || t.contains(" 02:30:00 +02:00")
                || t.contains(" 03:00:00 +02:00"),
            "{t}\n{run}"
        );
    }

    std::fs::write(
        &config,
        "[[job]]\nname = \"x\"\nvolumes = [\"vol\"]\ncron = \"30 2 * *\"\n",
    )
    .unwrap();
    volsafe(&["schedule", "--config", path_str(&config), "--check-config"])
        .assert_fails(2, "line 4");
    std::fs::write(&config, "[[job]]\nnmae = \"x\"\n").unwrap();
    volsafe(&["schedule", "--config", path_str(&config), "--check-config"])
        .assert_fails(2, "line 2");
    // Without --check-config an invalid config is exit 2 at start too.
    volsafe(&["schedule", "--config", path_str(&config)]).assert_fails(2, "nmae");

    // Drills on their own cron are listed with their next runs.
    std::fs::write(
        &config,
        "[[job]]\nname = \"nightly\"\nvolumes = [\"pgdata\"]\ncron = \"30 2 * * *\"\nto = \"/backups\"\n\
         no_encryption = true\ntimezone = \"UTC\"\ndrill = true\ndrill_cron = \"0 4 * * 0\"\n",
    )
    .unwrap();
    let run = volsafe(&["schedule", "--config", path_str(&config), "--check-config"]);
    run.assert_ok();
    assert!(run.stdout.contains("drilled after each backup"), "{run}");
    assert!(
        run.stdout
            .contains("job nightly drills: 0 4 * * 0 (UTC), newest archives in /backups"),
        "{run}"
    );
    let sundays = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("  ") && l.contains(" 04:00:00 +00:00"))
        .count();
    assert_eq!(sundays, 5, "{run}");
}
