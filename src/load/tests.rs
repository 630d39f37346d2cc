//! The load tool against a real server on a thread of its own: short runs that prove
//! each mode works end to end and that the check catches an over-admission.

use std::rc::Rc;
use std::time::Duration;

use super::report::{LineEntry, Op, Outcome, ServerView, Violation};
use super::target::{Entry, HttpTarget, NodeToken, Session, Standing, Target};
use super::{check_tenants, run, Belief, LoadConfig, TargetConfig};
use crate::http::{RunningServer, ServerConfig};
use crate::licence::LicenceSpec;

fn server() -> RunningServer {
    let mut config = ServerConfig::new("127.0.0.1:0", "load-test-admin");
    config.workers = 2;
    RunningServer::spawn(config).expect("the server starts")
}

fn over_http(server: &RunningServer) -> LoadConfig {
    let mut config = LoadConfig::new(TargetConfig::Http {
        urls: vec![server.url()],
        admin_token: server.admin_token.clone(),
    });
    config.seed = 1;
    config
}

#[test]
fn a_storm_over_http_admits_exactly_one_login_per_seat() {
    let server = server();
    let mut config = over_http(&server);
    config.storm = Some(300);
    config.seats = Some(30);
    let report = run(&config).unwrap();
    let login = &report.stats.ops[&Op::Login];
    assert_eq!(login.ok, 30, "{}", report.to_text());
    assert_eq!(login.refused["licence_limit_reached"], 270);
    assert_eq!(login.errors_total(), 0);
    assert!(report.passed(), "{}", report.to_text());
    assert_eq!(report.checks[0].view.seats_in_use, 30);
}

#[test]
fn the_browser_workload_over_http_ends_with_the_server_agreeing_with_the_clients() {
    let server = server();
    let mut config = over_http(&server);
    config.tenants = 2;
    config.users = 12;
    config.seats = Some(6);
    config.duration = Duration::from_millis(2500);
    // Ten simulated minutes a second: idle timeout 2 s, heartbeats every second.
    config.time_scale = 600.0;
    config.idle_timeout = Duration::from_secs(1200);
    let report = run(&config).unwrap();
    let text = report.to_text();
    assert!(report.passed(), "{text}");
    assert_eq!(report.checks.len(), 2);
    assert!(report.stats.ops[&Op::Login].ok > 0, "{text}");
    assert!(report.stats.ops[&Op::Heartbeat].ok > 0, "{text}");
    assert_eq!(report.stats.total().errors_total(), 0, "{text}");
    assert_eq!(report.to_json()["invariant"]["ok"], true);
}

#[test]
fn the_open_loop_runs_in_process_on_its_timetable() {
    let mut config = LoadConfig::new(TargetConfig::InProcess);
    config.tenants = 3;
    config.users = 20;
    config.rate = Some(400.0);
    config.duration = Duration::from_secs(1);
    config.time_scale = 300.0;
    config.seed = 9;
    let report = run(&config).unwrap();
    let total = report.stats.total();
    assert!(report.passed(), "{}", report.to_text());
    // Every slot of the timetable was issued or found every candidate busy.
    assert_eq!(total.count() + report.skipped, 400, "{}", report.to_text());
    assert_eq!(report.mode, "open-loop");
}

#[test]
fn an_in_process_storm_is_exact_too() {
    let mut config = LoadConfig::new(TargetConfig::InProcess);
    config.storm = Some(2000);
    config.seats = Some(200);
    let report = run(&config).unwrap();
    assert!(report.passed(), "{}", report.to_text());
    assert_eq!(report.stats.ops[&Op::Login].ok, 200);
}

/// A server view that counts one seat too many, as an over-admitting server would.
struct OverCounting(HttpTarget);

impl Target for OverCounting {
    type Token = NodeToken;

    fn describe(&self) -> String {
        self.0.describe()
    }
    async fn create_tenant(&self, tenant: &str, licence: &LicenceSpec) -> Result<(), String> {
        self.0.create_tenant(tenant, licence).await
    }
    async fn assign(&self, tenant: &str, user: &str) -> Result<(), String> {
        self.0.assign(tenant, user).await
    }
    async fn login(&self, tenant: &str, user: &str, client: &str) -> Outcome<Entry<NodeToken>> {
        self.0.login(tenant, user, client).await
    }
    async fn ticket_heartbeat(&self, ticket: &NodeToken) -> Outcome<Standing> {
        self.0.ticket_heartbeat(ticket).await
    }
    async fn claim(&self, ticket: &NodeToken) -> Outcome<Session<NodeToken>> {
        self.0.claim(ticket).await
    }
    async fn line(&self, tenant: &str) -> Result<Vec<LineEntry>, String> {
        self.0.line(tenant).await
    }
    async fn heartbeat(&self, token: &NodeToken) -> Outcome<()> {
        self.0.heartbeat(token).await
    }
    async fn release(&self, token: &NodeToken) -> Outcome<()> {
        self.0.release(token).await
    }
    async fn logout(&self, token: &NodeToken) -> Outcome<()> {
        self.0.logout(token).await
    }
    async fn view(&self, tenant: &str) -> Result<ServerView, String> {
        let mut view = self.0.view(tenant).await?;
        view.seats_in_use += 1;
        view.sessions += 1;
        Ok(view)
    }
    async fn delete_tenant(&self, tenant: &str) -> Result<(), String> {
        self.0.delete_tenant(tenant).await
    }
}

#[test]
fn the_check_catches_a_server_that_over_admits() {
    let server = server();
    let url = server.url();
    let checks = actix_web::rt::System::new().block_on(async move {
        let target = Rc::new(OverCounting(HttpTarget::new(
            &url,
            "load-test-admin",
            8,
            Duration::from_secs(5),
        )));
        let spec = LicenceSpec {
            model: "concurrent".into(),
            seats: Some(2),
            ..Default::default()
        };
        target.create_tenant("full", &spec).await.unwrap();
        for user in ["ann", "bob"] {
            assert!(matches!(
                target.login("full", user, "tab").await,
                Outcome::Ok(_)
            ));
        }
        let belief = Belief {
            seats_in_use: 2,
            sessions: 2,
        };
        check_tenants(&*target, &["full".to_string()], &[Some(belief)])
            .await
            .unwrap()
    });
    assert!(checks[0].violations.contains(&Violation::OverAdmitted {
        seats: 2,
        seats_in_use: 3,
        held_for_queue: 0,
    }));
}

#[test]
fn over_two_nodes_logins_alternate_and_heartbeats_go_to_the_other_node() {
    // Two URLs of one server: the routing is what is tested, not the nodes.
    let server = server();
    let urls = vec![server.url(), server.url()];
    let (tokens, sent) = actix_web::rt::System::new().block_on(async move {
        let target = HttpTarget::over(&urls, "load-test-admin", 8, Duration::from_secs(5));
        let spec = LicenceSpec {
            model: "concurrent".into(),
            seats: Some(5),
            ..Default::default()
        };
        target.create_tenant("spread", &spec).await.unwrap();
        let mut tokens = Vec::new();
        for user in ["ann", "bob"] {
            match target.login("spread", user, "tab").await {
                Outcome::Ok(Entry::Admitted(session)) => tokens.push(session.token),
                other => panic!("{user} was not admitted: {other:?}"),
            }
        }
        for token in &tokens {
            assert_eq!(target.heartbeat(token).await, Outcome::Ok(()));
        }
        (tokens, target.spread())
    });
    // The tenant was created through node 0, so the logins went to 1, then 0; each
    // heartbeat to the node its login did not go to.
    assert_eq!(tokens.iter().map(|t| t.node).collect::<Vec<_>>(), [1, 0]);
    let counts: Vec<u64> = sent.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        counts,
        [3, 2],
        "create, bob's login, ann's heartbeat | ann's login, bob's heartbeat"
    );
}

/// Two nodes of which the second counts a seat too many.
struct SecondNodeOverCounts(HttpTarget);

impl Target for SecondNodeOverCounts {
    type Token = NodeToken;

    fn describe(&self) -> String {
        self.0.describe()
    }
    async fn create_tenant(&self, tenant: &str, licence: &LicenceSpec) -> Result<(), String> {
        self.0.create_tenant(tenant, licence).await
    }
    async fn assign(&self, tenant: &str, user: &str) -> Result<(), String> {
        self.0.assign(tenant, user).await
    }
    async fn login(&self, tenant: &str, user: &str, client: &str) -> Outcome<Entry<NodeToken>> {
        self.0.login(tenant, user, client).await
    }
    async fn ticket_heartbeat(&self, ticket: &NodeToken) -> Outcome<Standing> {
        self.0.ticket_heartbeat(ticket).await
    }
    async fn claim(&self, ticket: &NodeToken) -> Outcome<Session<NodeToken>> {
        self.0.claim(ticket).await
    }
    async fn line(&self, tenant: &str) -> Result<Vec<LineEntry>, String> {
        self.0.line(tenant).await
    }
    async fn heartbeat(&self, token: &NodeToken) -> Outcome<()> {
        self.0.heartbeat(token).await
    }
    async fn release(&self, token: &NodeToken) -> Outcome<()> {
        self.0.release(token).await
    }
    async fn logout(&self, token: &NodeToken) -> Outcome<()> {
        self.0.logout(token).await
    }
    async fn view(&self, tenant: &str) -> Result<ServerView, String> {
        self.0.view(tenant).await
    }
    fn nodes(&self) -> usize {
        self.0.nodes()
    }
    async fn view_on(&self, tenant: &str, node: usize) -> Result<ServerView, String> {
        let mut view = self.0.view_on(tenant, node).await?;
        if node == 1 {
            view.seats_in_use += 1;
            view.sessions += 1;
        }
        Ok(view)
    }
    fn spread(&self) -> Vec<(String, u64)> {
        self.0.spread()
    }
    async fn delete_tenant(&self, tenant: &str) -> Result<(), String> {
        self.0.delete_tenant(tenant).await
    }
}

#[test]
fn the_check_reads_every_node_and_catches_one_that_disagrees() {
    let server = server();
    let urls = vec![server.url(), server.url()];
    let checks = actix_web::rt::System::new().block_on(async move {
        let target = SecondNodeOverCounts(HttpTarget::over(
            &urls,
            "load-test-admin",
            8,
            Duration::from_secs(5),
        ));
        let spec = LicenceSpec {
            model: "concurrent".into(),
            seats: Some(3),
            ..Default::default()
        };
        target.create_tenant("two-views", &spec).await.unwrap();
        for user in ["ann", "bob"] {
            assert!(matches!(
                target.login("two-views", user, "tab").await,
                Outcome::Ok(_)
            ));
        }
        // What the clients hold through both nodes together.
        let belief = Belief {
            seats_in_use: 2,
            sessions: 2,
        };
        check_tenants(&target, &["two-views".to_string()], &[Some(belief)])
            .await
            .unwrap()
    });
    assert_eq!(checks.len(), 1);
    assert!(
        checks[0].violations.contains(&Violation::SeatsDisagree {
            server: 3,
            clients: 2
        }),
        "{:?}",
        checks[0]
    );
    assert!(checks[0].node.is_some());
}

/// A small queueing workload: a dozen users per tenant onto three seats, ten simulated
/// minutes a second (idle timeout 2 s, heartbeats every second, claim window 2 s).
fn queueing(mut config: LoadConfig) -> LoadConfig {
    config.tenants = 2;
    config.users = 12;
    config.seats = Some(3);
    config.duration = Duration::from_millis(2500);
    config.time_scale = 600.0;
    config.idle_timeout = Duration::from_secs(1200);
    config.queue = true;
    config
}

/// What every queueing run must show: the line used, every queued login accounted
/// for, and the server's line agreeing with the clients.
fn assert_the_line_adds_up(report: &super::Report) {
    let text = report.to_text();
    assert!(report.passed(), "{text}");
    let queue = report.queue.as_ref().expect("queue figures");
    assert!(queue.queued > 0, "{text}");
    assert!(queue.served > 0, "{text}");
    assert_eq!(
        queue.queued,
        queue.served + queue.gave_up_total() + queue.waiting_at_end,
        "{text}"
    );
    assert_eq!(queue.wait.len(), queue.served, "{text}");
    assert!(report.stats.ops[&Op::TicketHeartbeat].ok > 0, "{text}");
    assert_eq!(report.stats.ops[&Op::Claim].ok, queue.served, "{text}");
    assert_eq!(report.stats.total().errors_total(), 0, "{text}");
    for check in &report.checks {
        let line = check.line.expect("the line was checked");
        assert_eq!(line.listed, line.clients_waiting, "{text}");
        assert_eq!(line.held, 0, "{text}");
        assert_eq!(check.view.held_for_queue, 0, "{text}");
    }
    assert!(text.contains("were put in line"), "{text}");
    let json = report.to_json();
    assert_eq!(json["queue"]["queued"], queue.queued);
    assert_eq!(json["queue"]["adds_up"], true);
    assert!(json["queue"]["wait_ms"]["p90"].is_number());
    assert!(json["operations"]["claim"]["latency_us"]["p99"].is_number());
}

#[test]
fn users_queued_in_process_wait_in_line_and_every_queued_login_is_accounted_for() {
    let mut config = queueing(LoadConfig::new(TargetConfig::InProcess));
    config.seed = 4;
    let report = run(&config).unwrap();
    assert_the_line_adds_up(&report);
}

#[test]
fn users_queued_over_http_wait_in_line_and_the_servers_line_agrees_with_them() {
    let server = server();
    let report = run(&queueing(over_http(&server))).unwrap();
    assert_the_line_adds_up(&report);
}

/// The storm's line: exactly the seats admitted, the rest at positions 1..N−S, and
/// every ticket served in turn as the seats are handed down.
fn assert_the_storm_line_drained(report: &super::Report, logins: u64, seats: u64) {
    let text = report.to_text();
    assert!(report.passed(), "{text}");
    assert_eq!(report.admitted(), seats, "{text}");
    let storm = report.storm.expect("a storm");
    let line = storm.line.expect("a line");
    assert_eq!(line.queued, logins - seats, "{text}");
    assert_eq!((line.position_faults, line.out_of_turn), (0, 0), "{text}");
    assert!(line.drained.is_some(), "{text}");
    let queue = report.queue.as_ref().expect("queue figures");
    assert_eq!(queue.served, logins - seats, "{text}");
    assert_eq!(queue.waiting_at_end, 0, "{text}");
    assert_eq!(report.stats.ops[&Op::Claim].ok, logins - seats, "{text}");
    // Every seat was released at the end, and nobody is left in line.
    assert_eq!(report.checks[0].view.seats_in_use, 0, "{text}");
    assert_eq!(report.checks[0].view.queued, 0, "{text}");
    assert!(text.contains("drained in"), "{text}");
    assert_eq!(report.to_json()["storm"]["position_faults"], 0);
}

#[test]
fn an_in_process_storm_onto_a_queueing_tenant_queues_the_rest_in_order_and_drains() {
    let mut config = LoadConfig::new(TargetConfig::InProcess);
    config.storm = Some(1000);
    config.seats = Some(100);
    config.queue = true;
    let report = run(&config).unwrap();
    assert_the_storm_line_drained(&report, 1000, 100);
}

#[test]
fn a_storm_over_http_onto_a_queueing_tenant_queues_the_rest_in_order_and_drains() {
    let server = server();
    let mut config = over_http(&server);
    config.storm = Some(300);
    config.seats = Some(30);
    config.queue = true;
    let report = run(&config).unwrap();
    assert_the_storm_line_drained(&report, 300, 30);
}

#[test]
fn the_line_check_reads_the_servers_line_and_names_who_it_lost() {
    let checks = actix_web::rt::System::new().block_on(async {
        let target = super::EngineTarget::new(crate::Engine::start(Default::default()));
        let spec = LicenceSpec {
            model: "concurrent".into(),
            seats: Some(1),
            on_limit: Some("queue".into()),
            ..Default::default()
        };
        target.create_tenant("line", &spec).await.unwrap();
        assert!(matches!(
            target.login("line", "ann", "tab").await,
            Outcome::Ok(Entry::Admitted(_))
        ));
        match target.login("line", "bob", "tab").await {
            Outcome::Ok(Entry::Queued(place)) => assert_eq!(place.position, 1),
            other => panic!("bob should wait in line: {other:?}"),
        }
        let tenants = ["line".to_string()];
        let view = target.view("line").await.unwrap();
        assert_eq!((view.queued, view.held_for_queue), (1, 0));
        let belief = Belief {
            seats_in_use: 1,
            sessions: 1,
        };
        let mut agreeing = check_tenants(&target, &tenants, &[Some(belief)])
            .await
            .unwrap();
        super::check_lines(&target, &tenants, &[vec!["bob".into()]], &mut agreeing)
            .await
            .unwrap();
        let mut lost = check_tenants(&target, &tenants, &[Some(belief)])
            .await
            .unwrap();
        let waiting = vec!["bob".to_string(), "cat".to_string()];
        super::check_lines(&target, &tenants, &[waiting], &mut lost)
            .await
            .unwrap();
        (agreeing, lost)
    });
    let (agreeing, lost) = checks;
    assert!(agreeing[0].violations.is_empty(), "{:?}", agreeing[0]);
    assert_eq!(agreeing[0].line.map(|l| l.listed), Some(1));
    assert_eq!(
        lost[0].violations,
        [Violation::LineDisagrees {
            missing: vec!["cat".into()],
            unknown: Vec::new(),
        }]
    );
}
