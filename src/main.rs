//! The `outrider` command: run (default), check, rules, demo.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use std::sync::Arc;

use outrider::config::{self, ConfigError};
use outrider::proxy::Shared;
use outrider::server::{self, Launch};
use outrider::{demo, logging, slo};

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const DEFAULT_CONFIG: &str = "conf/outrider.toml";
const DEMO_CONFIG: &str = "conf/demo.toml";

#[derive(Parser)]
#[command(
    name = "outrider",
    version,
    about = "A sidecar reverse proxy: compression, ETags, caching, circuit breaking, metrics"
)]
struct Cli {
    /// Policy file [default: $OUTRIDER_CONFIG, then conf/outrider.toml; for `demo`, conf/demo.toml]
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,

    /// Take over the listening sockets of a running outrider, then send it SIGQUIT
    #[arg(long, short = 'u')]
    upgrade: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default)
    Run,
    /// Validate a policy file and print a summary; exit 1 with every error found
    Check,
    /// Print Prometheus recording and alerting rules for the policy's objectives and health
    Rules {
        /// `prometheus`: a rule file; `prometheusrule`: a Kubernetes PrometheusRule object
        #[arg(long, value_enum, default_value_t = RulesFormat::Prometheus)]
        format: RulesFormat,
        /// Regex for the `job` label of Outrider's scrape targets (the absence and scrape alerts)
        #[arg(long, default_value = "outrider")]
        job: String,
        /// Where the runbook links point; each alert appends `#its-anchor`
        #[arg(long, default_value = "README.md")]
        runbook_base: String,
        /// `metadata.name` (and `app.kubernetes.io/name` label) of the PrometheusRule
        #[arg(long, default_value = "outrider")]
        name: String,
    },
    /// Run Outrider in front of its embedded demo backend
    Demo,
}

#[derive(Clone, Copy, ValueEnum)]
enum RulesFormat {
    Prometheus,
    Prometheusrule,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run(&config_path(cli.config), cli.upgrade),
        Command::Check => check(&config_path(cli.config)),
        Command::Rules {
            format,
            job,
            runbook_base,
            name,
        } => {
            let format = match format {
                RulesFormat::Prometheus => slo::Format::Prometheus,
                RulesFormat::Prometheusrule => slo::Format::PrometheusRule,
            };
            let path = config_path(cli.config);
            let options = slo::Options {
                job,
                runbook_base,
                source: path.display().to_string(),
                name,
                time_scale: 1,
            };
            rules(&path, &options, format)
        }
        Command::Demo => run_demo(cli.config),
    }
}

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("OUTRIDER_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG))
}

fn print_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("{e}");
    }
    eprintln!(
        "{} error{} found",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
}

fn check(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(loaded) => {
            // Written without println!, which panics when the reader goes away (`| head`).
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}: ok", path.display());
            let _ = write!(out, "{}", loaded.policy.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print_errors(&errors);
            ExitCode::FAILURE
        }
    }
}

fn rules(path: &Path, options: &slo::Options, format: slo::Format) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    match slo::render(&loaded.policy, options, format) {
        Ok(text) => {
            use std::io::Write;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path, upgrade: bool) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let shared = Shared::with_source(loaded.policy, Some(path.to_path_buf()), loaded.sha256);
    serve(shared, upgrade, None)
}

fn run_demo(flag: Option<PathBuf>) -> ExitCode {
    let path = flag.unwrap_or_else(|| PathBuf::from(DEMO_CONFIG));
    // From a checkout the file is used (edit it and rerun); anywhere else, the embedded copy.
    let loaded = if path.exists() {
        config::load(&path).map(|l| Shared::with_source(l.policy, Some(path.clone()), l.sha256))
    } else {
        config::compile(demo::DEMO_TOML, "conf/demo.toml (embedded)").map(|p| Shared::new(p, None))
    };
    let shared = match loaded {
        Ok(shared) => shared,
        Err(errors) => {
            print_errors(&errors);
            return ExitCode::FAILURE;
        }
    };
    let policy = shared.policy();
    let Some(backend) = policy
        .upstreams
        .first()
        .and_then(|u| u.endpoints.first())
        .map(|e| e.addr)
    else {
        eprintln!("the demo policy needs an upstream for the demo backend");
        return ExitCode::FAILURE;
    };
    let data = policy.server.listen.first().copied();
    let admin = policy.admin.listen;
    if let Some(data) = data {
        println!(
            "\nOutrider demo: proxy http://{data}  ->  demo backend http://{backend}   (admin http://{admin})\n\n\
             Try:\n  \
             curl -i http://{data}/api/items                 # JSON API\n  \
             curl -s -o /dev/null -w '%{{size_download}} bytes\\n' http://{data}/page   # large page\n  \
             curl -i 'http://{data}/slow?ms=800'             # slow endpoint\n  \
             curl -i 'http://{data}/fail?status=503'         # fails on demand\n  \
             curl -i http://{data}/nowhere --http2-prior-knowledge   # h2c\n  \
             curl -i http://{admin}/healthz ; curl -i http://{admin}/readyz\n\n\
             Stop with Ctrl-C (drains in-flight requests first).\n"
        );
    }
    serve(shared, false, Some(backend))
}

fn serve(
    shared: Arc<Shared>,
    upgrade: bool,
    demo_backend: Option<std::net::SocketAddr>,
) -> ExitCode {
    let policy = shared.policy();
    logging::init(&policy.log);
    if !upgrade {
        let mut addrs = policy.server.listen.clone();
        addrs.push(policy.admin.listen);
        addrs.extend(demo_backend);
        if let Err(e) = server::check_bindable(&addrs) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }
    let mut pingora = server::build(
        &shared,
        Launch {
            upgrade,
            exit_when_drained: true,
        },
    );
    if let Some(addr) = demo_backend {
        pingora.add_service(demo::service(addr));
    }
    server::run(pingora);
    ExitCode::SUCCESS
}
