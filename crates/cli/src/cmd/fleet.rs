//! Fleet commands against a server: `clusters`, `nodes`, `contracts`, and `token create`.

use cumulo_api::wire::TokenRequest;

use super::remote::{Remote, runtime};
use crate::output::{Format, print_json, table};

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(clap::Args)]
pub struct NodesArgs {
    /// Only this cluster's nodes
    #[arg(long)]
    pub cluster: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

fn gpus(used_milli: u64, total: u64) -> String {
    if total == 0 { "-".to_string() } else { format!("{}/{total}", used_milli as f64 / 1000.0) }
}

pub fn clusters(args: ListArgs) -> anyhow::Result<()> {
    let clusters = runtime()?.block_on(args.remote.client()?.clusters())?;
    match args.output {
        Format::Json => print_json(&clusters),
        Format::Table => {
            let mut t =
                table(["NAME", "PROVIDER", "REGION", "CAPACITY", "DRIVER", "NODES UP", "GPUS USED", "VCPUS", "STATUS"]);
            for c in &clusters {
                let driver = if c.simulated && c.driver != "simulated" {
                    format!("{} (simulated)", c.driver)
                } else {
                    c.driver.clone()
                };
                t.add_row(vec![
                    c.name.clone(),
                    c.provider.clone(),
                    c.region.clone(),
                    c.capacity.clone(),
                    driver,
                    format!("{}/{}", c.nodes_up, c.nodes),
                    gpus(c.gpus_used_milli, c.gpus),
                    c.vcpus.to_string(),
                    c.status.clone(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}

pub fn nodes(args: NodesArgs) -> anyhow::Result<()> {
    let nodes = runtime()?.block_on(args.remote.client()?.nodes(args.cluster.as_deref()))?;
    match args.output {
        Format::Json => print_json(&nodes),
        Format::Table => {
            let mut t = table(["NAME", "CLUSTER", "ZONE", "STATE", "GPU", "GPUS USED", "VCPUS USED", "MEMORY GiB"]);
            for n in &nodes {
                let state = if n.simulated { format!("{} (simulated)", n.state) } else { n.state.clone() };
                t.add_row(vec![
                    n.name.clone(),
                    n.cluster.clone(),
                    n.zone.clone(),
                    state,
                    n.gpu.clone().unwrap_or_else(|| "-".into()),
                    gpus(n.gpus_used_milli, u64::from(n.gpus)),
                    format!("{}/{}", n.cpus_used_milli as f64 / 1000.0, n.vcpus),
                    (n.memory_mib / 1024).to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
    }
}

/// The server's contracts against their burn schedule: committed, consumed (metered usage), on or
/// behind schedule, and the projected shortfall or overrun at term end.
pub fn contracts(args: ListArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let (portfolio, mut burn) =
        runtime()?.block_on(async { tokio::try_join!(client.contracts(), client.contracts_burn_down()) })?;
    if args.output == Format::Json {
        if let Some(object) = burn.as_object_mut() {
            object.insert("deliveries".into(), portfolio["deliveries"].clone());
        }
        return print_json(&burn);
    }
    if burn["illustrative"].as_bool() == Some(true) {
        eprintln!(
            "portfolio `{}`: illustrative figures, not real contract terms",
            burn["portfolio"].as_str().unwrap_or("")
        );
    }
    let money = |v: &serde_json::Value| v.as_i64().map(|m| cumulo_types::Money(m).usd_short()).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let clauses_of = |id: &str| {
        portfolio["contracts"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["id"] == id))
            .and_then(|c| c["clauses"].as_object())
            .map(|o| o.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k.clone()).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let mut t = table([
        "ID",
        "PROVIDER",
        "COMMITTED",
        "TERM",
        "CLAUSES",
        "SCHEDULED",
        "CONSUMED",
        "STATUS",
        "PROJECTED",
        "SHORTFALL",
        "OVERRUN",
    ]);
    for c in burn["contracts"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&c["contract"]),
            text(&c["provider"]),
            money(&c["committed"]),
            text(&c["term"]),
            clauses_of(c["contract"].as_str().unwrap_or_default()),
            money(&c["scheduled"]),
            money(&c["consumed"]),
            text(&c["status_text"]),
            money(&c["projected_consumed"]),
            money(&c["projected_shortfall"]),
            money(&c["projected_overrun"]),
        ]);
    }
    println!("{t}");
    println!(
        "consumed = usage metered by this server under each contract; projection carries the last week's use forward"
    );
    print_deliveries(&portfolio["deliveries"]);
    Ok(())
}

/// Contract capacity the clusters hold against what each ramp has delivered by now.
fn print_deliveries(deliveries: &serde_json::Value) {
    let Some(rows) = deliveries.as_array().filter(|r| !r.is_empty()) else { return };
    let mut t =
        table(["CONTRACT", "REGION", "NODE TYPE", "CLUSTERS", "DELIVERED", "DISCOVERED", "SCHEDULABLE", "SHORTFALL"]);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let number = |v: &serde_json::Value| v.as_u64().unwrap_or(0).to_string();
    for d in rows {
        let clusters: Vec<String> = d["clusters"].as_array().into_iter().flatten().map(text).collect();
        let mut clusters = clusters.join(", ");
        if d["simulated"].as_bool() == Some(true) {
            clusters.push_str(" (simulated)");
        }
        t.add_row(vec![
            text(&d["contract"]),
            text(&d["region"]),
            text(&d["node_type"]),
            clusters,
            number(&d["delivered"]),
            number(&d["discovered"]),
            number(&d["schedulable"]),
            number(&d["shortfall"]),
        ]);
    }
    println!("\ndeliveries (nodes the ramp has delivered by now against the nodes the clusters show):\n{t}");
    for d in rows.iter().filter(|d| d["shortfall"].as_u64() > Some(0)) {
        println!(
            "delivery shortfall: {} has delivered {} {} nodes in {} by now, the clusters show {}{}",
            text(&d["contract"]),
            number(&d["delivered"]),
            text(&d["node_type"]),
            text(&d["region"]),
            number(&d["discovered"]),
            if d["simulated"].as_bool() == Some(true) { " (simulated clusters)" } else { "" }
        );
    }
}

#[derive(clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a tenant and role (admins only); the secret is printed once
    Create(TokenCreateArgs),
}

#[derive(clap::Args)]
pub struct TokenCreateArgs {
    /// The tenant whose jobs the token may see
    #[arg(long)]
    pub tenant: String,
    /// admin (everything), member (submit, cancel and read its tenant's jobs) or viewer (read only)
    #[arg(long)]
    pub role: String,
    /// A label for people (default: TENANT-ROLE)
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let TokenCommand::Create(args) = args.command;
    let request = TokenRequest { tenant: args.tenant, role: args.role, name: args.name };
    let token = runtime()?.block_on(args.remote.client()?.create_token(&request))?;
    match args.output {
        Format::Json => print_json(&token),
        Format::Table => {
            println!("{}", token.token);
            eprintln!(
                "token `{}` for tenant `{}` with role {}: shown once, keep it safe",
                token.name, token.tenant, token.role
            );
            Ok(())
        }
    }
}

#[derive(clap::Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    pub command: TenantCommand,
}

#[derive(clap::Subcommand)]
pub enum TenantCommand {
    /// List the tenants: the fleet file's and those created over the API
    List(ListArgs),
    /// Create a tenant (admins only); it is kept in the server's store
    Create(TenantCreateArgs),
    /// Set a tenant's monthly budget (admins only): `--monthly 50000 --hard` holds back jobs that
    /// would pass it; `--soft` only shows on /metrics. Overrides the fleet file's budget.
    Budget(TenantBudgetArgs),
}

#[derive(clap::Args)]
pub struct TenantBudgetArgs {
    /// The tenant
    pub name: String,
    /// Dollars per calendar month (UTC), e.g. 50000 or '$50,000.00'
    #[arg(long, allow_hyphen_values = true)]
    pub monthly: String,
    /// A hard budget (the default): a job that would pass it waits, with a reason naming it
    #[arg(long, conflicts_with = "soft")]
    pub hard: bool,
    /// A soft budget: shown on /metrics for alerting, never holds a job back
    #[arg(long)]
    pub soft: bool,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

#[derive(clap::Args)]
pub struct TenantCreateArgs {
    /// Name: lowercase letters, digits, '-' or '_', starting with a letter
    pub name: String,
    /// Fair-share weight (a tenant of weight 2 gets twice the share of one of weight 1)
    #[arg(long, default_value_t = 1)]
    pub weight: u32,
    /// Quota: at most this many GPUs at once (fractions allowed, e.g. 0.5)
    #[arg(long)]
    pub gpus: Option<f64>,
    /// Quota: at most this many vCPUs at once
    #[arg(long)]
    pub cpus: Option<f64>,
    #[command(flatten)]
    pub remote: Remote,
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
}

/// A budget as the tables show it: `$50,000.00 hard`, or `-`.
fn budget_text(budget: Option<&cumulo_api::tenants::BudgetView>) -> String {
    budget.map_or("-".to_string(), |b| match cumulo_types::Money::parse_dollars(&b.monthly) {
        Ok(m) => format!("{} {}", m.usd(), b.kind),
        Err(_) => format!("{} {}", b.monthly, b.kind),
    })
}

/// A quota in thousandths, refusing negative or non-finite numbers.
fn milli(flag: &str, value: Option<f64>) -> anyhow::Result<Option<u64>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some((v * 1000.0).round() as u64)),
        Some(v) => anyhow::bail!("invalid {flag} `{v}`: expected a number of at least 0"),
    }
}

pub fn tenant(args: TenantArgs) -> anyhow::Result<()> {
    match args.command {
        TenantCommand::List(args) => {
            let tenants = runtime()?.block_on(args.remote.client()?.tenants())?;
            match args.output {
                Format::Json => print_json(&tenants),
                Format::Table => {
                    let mut t = table(["TENANT", "FROM", "WEIGHT", "GPU QUOTA", "CPU QUOTA", "MONTHLY BUDGET"]);
                    let quota = |m: Option<u64>| m.map_or("-".to_string(), |m| format!("{}", m as f64 / 1000.0));
                    for tenant in &tenants {
                        t.add_row([
                            tenant.name.clone(),
                            tenant.source.clone(),
                            tenant.weight.map_or("(fleet file)".to_string(), |w| w.to_string()),
                            quota(tenant.gpus_milli),
                            quota(tenant.cpus_milli),
                            budget_text(tenant.budget.as_ref()),
                        ]);
                    }
                    println!("{t}");
                    Ok(())
                }
            }
        }
        TenantCommand::Budget(args) => {
            let kind = if args.soft { "soft" } else { "hard" };
            let monthly = cumulo_types::Money::parse_dollars(&args.monthly).map_err(|_| {
                anyhow::anyhow!("--monthly: invalid amount `{}`: expected dollars such as 50000", args.monthly)
            })?;
            // Whole dollars travel exactly as an integer; cents as a decimal number.
            let monthly = if monthly.0 % 1_000_000 == 0 {
                serde_json::Value::from(monthly.0 / 1_000_000)
            } else {
                serde_json::Value::from(monthly.as_dollars_f64())
            };
            let request = cumulo_api::tenants::BudgetRequest { monthly, kind: Some(kind.to_string()) };
            let tenant = runtime()?.block_on(args.remote.client()?.set_budget(&args.name, &request))?;
            match args.output {
                Format::Json => print_json(&tenant),
                Format::Table => {
                    println!("tenant `{}`: monthly budget {}", tenant.name, budget_text(tenant.budget.as_ref()));
                    Ok(())
                }
            }
        }
        TenantCommand::Create(args) => {
            let request = cumulo_api::tenants::TenantRequest {
                name: args.name,
                weight: Some(args.weight),
                gpus_milli: milli("--gpus", args.gpus)?,
                cpus_milli: milli("--cpus", args.cpus)?,
            };
            let tenant = runtime()?.block_on(args.remote.client()?.create_tenant(&request))?;
            match args.output {
                Format::Json => print_json(&tenant),
                Format::Table => {
                    println!("tenant `{}` created (weight {})", tenant.name, tenant.weight.unwrap_or(1));
                    eprintln!("give it a token: cumulo token create --tenant {} --role member", tenant.name);
                    Ok(())
                }
            }
        }
    }
}
