//! Starting the service's threads: the retrain thread, the device thread (button polling, pulse
//! ends), and one thread per transport and per connection.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::devices::{led_state, ButtonSource, DeviceHub, BUTTON_POLL};
use super::super::error::ServeError;
use super::super::protocol::{self, ErrorCode, RequestError};
use super::super::retrain::job::{RetrainSettings, Shared};
use super::super::retrain::worker::Retrainer;
use super::super::sync::lock;
use super::super::transport::listen::{Conn, Listener};
use super::super::transport::stream::{serve_stream, StreamKind};
use super::gate::Gate;
use super::state::Service;

impl Service {
    /// Attaches the devices and starts the retrain thread, the device thread and the transports
    /// of the options (standard input, `socket`, `listen`).
    pub fn start(&self, devices: DeviceHub) -> Result<(), ServeError> {
        let inner = &self.inner;
        *lock(&inner.actions) = devices.actions;
        let led = devices.led.map(Arc::new);
        *lock(&inner.led) = led.clone();
        if let (Some(layout), Some(journal)) = (&inner.layout, &inner.journal) {
            let o = &inner.opts;
            let shared = Shared {
                layout: layout.clone(),
                engine: Arc::clone(&inner.engine),
                journal: Arc::clone(journal),
                settings: RetrainSettings {
                    threads: o.threads,
                    priority: o.retrain_priority,
                    max_memory: o.max_memory,
                    data: o.data.clone(),
                    cache_dir: o.cache_dir.clone(),
                    backbone: o.backbone.clone(),
                    swap_margin: o.swap_margin,
                    epochs: o.retrain_epochs,
                    copies: o.correction_copies,
                    export_on_swap: o.export_on_swap.clone(),
                },
            };
            // A weak handle: `finish` drops the LED (which turns it off) whatever the thread holds.
            let busy = led.as_ref().map(|l| {
                let weak = Arc::downgrade(l);
                Box::new(move |on: bool| {
                    if let Some(l) = weak.upgrade() {
                        l.set(led_state(on));
                    }
                }) as Box<dyn Fn(bool) + Send>
            });
            let r = Retrainer::spawn(shared, Arc::clone(&inner.stats), busy)?;
            let _ = inner.retrainer.set(r);
        }
        self.spawn_device_thread(devices.button)?;
        if let Some(path) = &inner.opts.socket {
            self.listen(Listener::unix(path, inner.opts.socket_group.as_deref())?)?;
        }
        if let Some(addr) = inner.opts.listen {
            self.listen(Listener::tcp(addr)?)?;
        }
        if let Some((path, baud)) = &inner.opts.serial {
            self.serve_serial(path, *baud)?;
        }
        // Standard input last: at its end the service stops unless another transport runs.
        if inner.opts.stdin {
            let svc = self.clone();
            inner.transports.fetch_add(1, Ordering::SeqCst);
            std::thread::Builder::new()
                .name("stdin".into())
                .spawn(move || {
                    let out = std::io::stdout();
                    if let Err(e) =
                        serve_stream(&svc, std::io::stdin().lock(), out.lock(), StreamKind::Stdin)
                    {
                        eprintln!("edgetune serve: stdin: {e}");
                    }
                    svc.transport_ended();
                })
                .map_err(ServeError::io("stdin thread"))?;
        }
        Ok(())
    }

    /// Answers requests from the serial port `path` at `baud` on a thread.
    #[cfg(feature = "linux")]
    fn serve_serial(&self, path: &str, baud: u32) -> Result<(), ServeError> {
        let port = super::super::transport::serial::open(path, baud)?;
        let svc = self.clone();
        self.inner.transports.fetch_add(1, Ordering::SeqCst);
        std::thread::Builder::new()
            .name("serial".into())
            .spawn(move || {
                if let Err(e) = super::super::transport::serial::serve_serial(&svc, port) {
                    eprintln!("edgetune serve: serial: {e}");
                }
                svc.transport_ended();
            })
            .map_err(ServeError::io("serial thread"))?;
        Ok(())
    }

    #[cfg(not(feature = "linux"))]
    fn serve_serial(&self, _path: &str, _baud: u32) -> Result<(), ServeError> {
        Err(ServeError::Config(
            "--serial needs the `linux` feature, which this build lacks".into(),
        ))
    }

    /// The bound TCP address (after [`start`](Self::start) with `listen`).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        lock(&self.inner.listeners)
            .iter()
            .find_map(|l| l.tcp_addr())
    }

    fn listen(&self, listener: Listener) -> Result<(), ServeError> {
        eprintln!("edgetune serve: listening on {}", listener.describe());
        let listener = Arc::new(listener);
        lock(&self.inner.listeners).push(Arc::clone(&listener));
        let svc = self.clone();
        self.inner.transports.fetch_add(1, Ordering::SeqCst);
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || {
                loop {
                    let conn = listener.accept();
                    if svc.inner.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    match conn {
                        Ok(c) => svc.client(c),
                        Err(e) => {
                            eprintln!("edgetune serve: {}: {e}", listener.describe());
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
                svc.transport_ended();
            })
            .map_err(ServeError::io("accept thread"))?;
        Ok(())
    }

    /// Most connections of this kind: TCP leaves one slot to the Unix socket when both listen.
    fn slots_for(&self, conn: &Conn) -> usize {
        let o = &self.inner.opts;
        let reserve = usize::from(!conn.is_local() && o.socket.is_some() && o.max_clients > 1);
        o.max_clients - reserve
    }

    /// Serves one connection on its own thread (or refuses it when too many are open).
    fn client(&self, conn: Conn) {
        let id = self.inner.next_client.fetch_add(1, Ordering::SeqCst) as u64;
        let slots = self.slots_for(&conn);
        let registered = conn.try_clone().ok().and_then(|c| {
            let mut clients = lock(&self.inner.clients);
            (clients.len() < slots).then(|| clients.push((id, c)))
        });
        if registered.is_none() {
            let mut conn = conn;
            let e = RequestError::new(
                ErrorCode::Busy,
                format!(
                    "too many clients (at most {}); try again later",
                    self.inner.opts.max_clients
                ),
            );
            self.inner.stats.error(e.code);
            let _ = std::io::Write::write_all(
                &mut conn,
                format!("{}\n", protocol::error_reply(&e, 0, None)).as_bytes(),
            );
            return;
        }
        if self.inner.stopping.load(Ordering::SeqCst) {
            // Accepted as the service stopped: answer what it sent already, read nothing more.
            conn.shutdown_read();
        }
        let _ = conn.set_read_timeout(self.inner.opts.idle_timeout);
        let svc = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("client-{id}"))
            .spawn(move || {
                let result = conn.try_clone().and_then(|writer| {
                    let gate = Gate::new(&svc, &conn)?;
                    serve_stream(
                        &gate,
                        conn,
                        std::io::BufWriter::new(writer),
                        StreamKind::Connection,
                    )
                });
                if let Err(e) = result {
                    // A client that went away mid-reply is its own business.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                    ) {
                        eprintln!("edgetune serve: client {id}: {e}");
                    }
                }
                lock(&svc.inner.clients).retain(|(i, _)| *i != id);
            });
        if let Err(e) = spawned {
            eprintln!("edgetune serve: cannot start a client thread: {e}");
            lock(&self.inner.clients).retain(|(i, _)| *i != id);
        }
    }

    fn spawn_device_thread(
        &self,
        mut button: Option<Box<dyn ButtonSource>>,
    ) -> Result<(), ServeError> {
        if button.is_none() && lock(&self.inner.actions).is_none() {
            return Ok(());
        }
        let svc = self.clone();
        std::thread::Builder::new()
            .name("devices".into())
            .spawn(move || {
                let mut last_error: Option<String> = None;
                while !svc.inner.stopping.load(Ordering::SeqCst) {
                    let now = Instant::now();
                    if let Some(b) = button.as_mut() {
                        match b.pressed(now) {
                            Ok(true) => {
                                svc.button_pressed();
                            }
                            Ok(false) => last_error = None,
                            Err(e) => {
                                if last_error.as_ref() != Some(&e) {
                                    eprintln!("edgetune serve: feedback button: {e}");
                                    last_error = Some(e);
                                }
                            }
                        }
                    }
                    let deadline = {
                        let mut actions = lock(&svc.inner.actions);
                        match actions.as_mut() {
                            Some(a) => {
                                for f in a.service() {
                                    eprintln!("edgetune serve: {f}");
                                }
                                a.next_deadline()
                            }
                            None => None,
                        }
                    };
                    let mut wait = if button.is_some() {
                        BUTTON_POLL
                    } else {
                        Duration::from_millis(50)
                    };
                    if let Some(d) = deadline {
                        wait = wait.min(d.saturating_duration_since(Instant::now()));
                    }
                    std::thread::sleep(wait.max(Duration::from_millis(1)));
                }
            })
            .map_err(ServeError::io("device thread"))?;
        Ok(())
    }

    fn transport_ended(&self) {
        if self.inner.transports.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.stop();
        }
    }
}
