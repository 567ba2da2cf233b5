//! The running lab's control socket (`<lab dir>/control.sock`): a second
//! terminal sends one fault per connection (`cut-wan gw1 10`, `restart
//! edge`, `stop-carbon`, `start-carbon`); the live view carries it out
//! between two rounds, answers, and prints what happened.

use anyhow::Context;
use pisek_lab::Lab;
use pisek_lab::lab::faults::Fault;
use pisek_lab::sensor_lab::SensorLab;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

/// A fault asked for, and where its answer goes.
type Request = (String, Sender<String>);

/// The control socket of a running lab.
pub struct Control {
    name: String,
    requests: Receiver<Request>,
    /// WANs cut, and when each comes back.
    restore: Mutex<Vec<(String, Instant)>>,
}

/// The socket of the lab named `name` (its namespace prefix).
fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("pisek-lab-{name}"))
        .join("control.sock")
}

/// Sends `fault` to the running lab `name`; its answer.
pub fn send(name: &str, fault: &str) -> anyhow::Result<String> {
    let path = socket_path(name);
    let mut stream = UnixStream::connect(&path)
        .with_context(|| format!("no lab `{name}` runs ({})", path.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(format!("{}\n", fault.trim()).as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}

impl Control {
    /// Listens at the lab's control socket; a thread hands each request to
    /// the live view.
    pub fn listen(lab: &Lab, name: &str) -> anyhow::Result<Control> {
        let path = lab.dir.join("control.sock");
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        let (tx, requests) = channel::<Request>();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let (answer_tx, answer_rx) = channel();
                if tx.send((line, answer_tx)).is_err() {
                    return;
                }
                let answer = answer_rx
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|_| "error: the lab did not answer".into());
                let _ = (&stream).write_all(format!("{answer}\n").as_bytes());
            }
        });
        Ok(Control {
            name: name.to_string(),
            requests,
            restore: Mutex::new(Vec::new()),
        })
    }

    /// The lab's name, for `--name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Restores the WANs whose cut is over and carries out the faults
    /// asked for since the last round.
    pub fn apply_due(&self, lab: &Lab, sensors: &mut SensorLab<'_>) {
        let now = Instant::now();
        let due: Vec<String> = {
            let mut restore = self.restore.lock().unwrap_or_else(|e| e.into_inner());
            let (due, later): (Vec<_>, Vec<_>) = restore.drain(..).partition(|(_, t)| *t <= now);
            *restore = later;
            due.into_iter().map(|(node, _)| node).collect()
        };
        for node in due {
            match lab.set_wan(&node, true) {
                Ok(()) => println!("{:>10}: {node}'s WAN is back up", "fault"),
                Err(e) => println!("{:>10}: restoring {node}'s WAN: {e:#}", "fault"),
            }
        }
        while let Ok((line, answer)) = self.requests.try_recv() {
            let reply = match line.parse::<Fault>() {
                Ok(fault) => self.apply(lab, sensors, fault),
                Err(e) => format!("error: {e}"),
            };
            println!("{:>10}: {reply}", "fault");
            let _ = answer.send(reply);
        }
    }

    fn apply(&self, lab: &Lab, sensors: &mut SensorLab<'_>, fault: Fault) -> String {
        let result = match fault {
            Fault::CutWan { node, duration } => lab.set_wan(&node, false).map(|()| {
                self.restore
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((node.clone(), Instant::now() + duration));
                format!("{node}'s WAN cut for {} s", duration.as_secs())
            }),
            Fault::Restart { node } => lab
                .restart_agent(&node)
                .map(|took| format!("{node}'s agent restarted in {} ms", took.as_millis())),
            Fault::StopCarbon => sensors.stop_carbon().map(|()| "carbon stopped".to_string()),
            Fault::StartCarbon => sensors
                .start_carbon()
                .map(|()| "carbon started".to_string()),
        };
        result.unwrap_or_else(|e| format!("error: {e:#}"))
    }
}
