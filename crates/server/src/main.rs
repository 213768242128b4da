//! The `crosspool` binary. Wiring only: it parses the command line, opens the store and hands
//! over to the crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use store::{Store, StoreConfig};

/// mimalloc instead of glibc's malloc: a request allocates many small, short-lived buffers
/// (JSON, headers, rows), and glibc's malloc and free were ~15% of the VNet PUT bench's
/// samples. With mimalloc that bench served 7% more requests/s on SQLite, with a lower p99 and
/// peak RSS (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// crosspool: a multi-tenant IPAM control plane that speaks the Azure Virtual Network Manager IPAM
/// contract.
#[derive(Debug, Parser)]
#[command(name = "crosspool", version)]
struct Cli {
    /// Directory of the embedded SQLite store (used unless --database is given).
    #[arg(long, global = true, default_value = "./crosspool-data")]
    data_dir: PathBuf,

    /// A PostgreSQL URL (postgres://user@host:port/db) to use instead of SQLite; several
    /// crosspool processes may share it.
    #[arg(long, global = true, env = "CROSSPOOL_DATABASE_URL")]
    database: Option<String>,

    /// A file holding the key-encryption key that seals the signing keys in the store (base64
    /// of 32 bytes, mode 0600). By default <data-dir>/kek, created on first start; every
    /// replica of one store needs the same key. `CROSSPOOL_KEK` may hold the key itself.
    #[arg(long, global = true, env = "CROSSPOOL_KEK_FILE")]
    kek_file: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the identity platform (and, as they land, ARM and the portal) over HTTPS.
    Serve {
        /// Address and port to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// Also serve on this address (repeatable), e.g. 127.0.0.1:443, where MSAL looks up the
        /// user realm before a password sign-in (`az login -u -p`).
        #[arg(long)]
        also_listen: Vec<std::net::SocketAddr>,
        /// Create demo tenants A and B with users, and write <data-dir>/demo.json.
        #[arg(long)]
        demo: bool,
        /// Seconds a client has to send a request's headers, counted from when the connection
        /// is ready for a request (so also how long an idle keep-alive connection stays open).
        #[arg(long, default_value_t = 15)]
        header_timeout: u64,
        /// Seconds a client has to send a request's body.
        #[arg(long, default_value_t = 30)]
        body_timeout: u64,
        /// Seconds a connection may stay silent in both directions before it is closed.
        #[arg(long, default_value_t = 60)]
        idle_timeout: u64,
        /// Connections served at once; more are closed as they arrive.
        #[arg(long, default_value_t = 4096)]
        max_connections: usize,
        /// Seconds requests in flight get to finish after SIGTERM (or Ctrl-C) before the
        /// server exits; no new connection is accepted meanwhile.
        #[arg(long, default_value_t = 30)]
        shutdown_grace: u64,
        /// How log lines are written to stderr (one per request; the level comes from
        /// RUST_LOG, default info).
        #[arg(long, value_enum, default_value_t = server::logging::LogFormat::Text)]
        log_format: server::logging::LogFormat,
        /// Also serve /metrics (Prometheus text format, plain HTTP) on this address, to any
        /// client that reaches it; the main port serves it to loopback clients only.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
    },
    /// Administration straight on the store.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print (and with --apply run) the az CLI set-up for the server of this --data-dir:
    /// `az cloud register`, `az cloud set`, `az config set`, and the CA to trust.
    AzSetup {
        /// The server's URL; by default the endpoint in <data-dir>/demo.json, else
        /// https://127.0.0.1:8443.
        #[arg(long)]
        endpoint: Option<String>,
        /// Run the az commands instead of only printing them.
        #[arg(long)]
        apply: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Open the store (creating or upgrading its schema), audit it, and print what was found;
    /// fails if anything is wrong.
    Check,
    /// Back the SQLite store up to a new file while the server serves (PostgreSQL: see
    /// docs/operations.md).
    Backup {
        /// The file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into this --data-dir, which must hold no store yet; then check it.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Tenants (directories).
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Users of a tenant.
    #[command(subcommand)]
    User(UserCommand),
    /// App registrations.
    #[command(subcommand)]
    App(AppCommand),
    /// Service principals.
    #[command(subcommand)]
    Sp(SpCommand),
    /// Subscriptions.
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Role assignments.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Token signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a signing key and sign with it from now on (every replica within a minute); the old
    /// keys keep verifying until the tokens they signed have expired.
    Rotate,
}

#[derive(Debug, Subcommand)]
enum SubscriptionCommand {
    /// Create a subscription in a tenant; prints it with its new id.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        display_name: String,
    },
    /// List a tenant's subscriptions.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
enum RoleCommand {
    /// Assign a built-in role (by name or id) at a scope inside a subscription. The assignee is
    /// a user's UPN or object id, or a service principal's object id or app id, in the scope's
    /// tenant.
    Assign {
        #[arg(long)]
        scope: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        assignee: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints it with its new id.
    Create {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List tenants.
    List,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; without --password a random one is generated and printed once.
    Create {
        /// The tenant's id or domain.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        upn: String,
        #[arg(long)]
        display_name: Option<String>,
        /// Make the user an administrator of the tenant.
        #[arg(long)]
        admin: bool,
        #[arg(long, env = "CROSSPOOL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List a tenant's users.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Disable a user (by UPN or object id): no sign-in, no refresh, and the tokens it holds
    /// are refused at once.
    Disable {
        #[arg(long)]
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long)]
        user: String,
    },
    /// Delete a user; the tokens it holds are refused at once.
    Delete {
        #[arg(long)]
        user: String,
    },
    /// Set a new password (without --password a random one is printed once) and revoke every
    /// token the user holds.
    ResetPassword {
        #[arg(long)]
        user: String,
        #[arg(long, env = "CROSSPOOL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Revoke every token the user holds (Graph's revokeSignInSessions).
    RevokeSessions {
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Register an app with one client secret; prints the secret once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        display_name: String,
        /// signInAudience AzureADMultipleOrgs instead of AzureADMyOrg.
        #[arg(long)]
        multi_tenant: bool,
    },
    /// List a tenant's app registrations.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Delete an app registration (by app id): no token is issued to it or refreshed for it
    /// from then on, in any tenant.
    Delete {
        #[arg(long)]
        app_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum SpCommand {
    /// Create an app's service principal in a tenant.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        app_id: String,
    },
    /// List a tenant's service principals.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Delete a service principal (by object id, or app id with --tenant): its app gets no token
    /// in that tenant from then on, and ARM refuses the ones it holds.
    Delete {
        #[arg(long)]
        id: String,
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Every layer of the chain, so the message says what failed and where.
            let mut message = format!("error: {error}");
            for cause in error.chain().skip(1) {
                message.push_str(&format!("\n  caused by: {cause}"));
            }
            #[allow(clippy::print_stderr)] // Reason: the command line's error channel.
            {
                eprintln!("{message}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = match &cli.database {
        Some(url) => StoreConfig::postgres(url),
        None => StoreConfig::sqlite(&cli.data_dir),
    };
    let kek = kek_source(cli.kek_file.clone());
    match cli.command {
        Command::Serve {
            listen,
            also_listen,
            demo,
            header_timeout,
            body_timeout,
            idle_timeout,
            max_connections,
            log_format,
            shutdown_grace,
            metrics_listen,
        } => {
            server::logging::init(log_format);
            let limits = server::transport::Limits {
                header_timeout: Duration::from_secs(header_timeout),
                body_timeout: Duration::from_secs(body_timeout),
                idle_timeout: Duration::from_secs(idle_timeout),
                max_connections,
            };
            let config = server::ServeConfig {
                listen,
                also_listen,
                database: cli.database.map(StoreConfig::postgres),
                demo,
                kek,
                limits,
                metrics_listen,
                ..server::ServeConfig::local(cli.data_dir)
            };
            serve(config, Duration::from_secs(shutdown_grace))
        }
        Command::AzSetup { endpoint, apply } => {
            let (commands, export) = server::az_setup::plan(&cli.data_dir, endpoint)?;
            for command in &commands {
                println!("{}", command.join(" "));
            }
            println!("{export}");
            if apply {
                server::az_setup::apply(
                    &commands,
                    &export,
                    &server::az_setup::AzProgram::default(),
                )?;
                println!("# done; the export line must run in each shell that uses az");
            }
            Ok(())
        }
        Command::Admin(AdminCommand::Check) => {
            println!("{}", server::backup::check(&config)?);
            Ok(())
        }
        Command::Admin(AdminCommand::Backup { to }) => {
            let summary = server::backup::backup(&config, &cli.data_dir, &to)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::Admin(AdminCommand::Restore { from }) => {
            let summary = server::backup::restore(&config, &from, &cli.data_dir, &kek)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::Admin(command) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            runtime.block_on(admin_directory(&config, &cli.data_dir, &kek, command))
        }
    }
}

/// Where the key-encryption key comes from: `CROSSPOOL_KEK`, else `--kek-file`, else the data
/// directory.
fn kek_source(kek_file: Option<PathBuf>) -> server::files::KekSource {
    match (std::env::var("CROSSPOOL_KEK"), kek_file) {
        (Ok(text), _) if !text.trim().is_empty() => server::files::KekSource::Text(text),
        (_, Some(path)) => server::files::KekSource::File(path),
        _ => server::files::KekSource::DataDir,
    }
}

/// The directory commands: each opens the store, changes or lists, and prints JSON.
async fn admin_directory(
    config: &StoreConfig,
    data_dir: &std::path::Path,
    kek: &server::files::KekSource,
    command: AdminCommand,
) -> anyhow::Result<()> {
    use identity::directory;
    use serde_json::json;
    let store_config = config.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&store_config))
        .await?
        .context("opening the store")?;
    let now = identity::Clock::now(&server::SystemClock);
    let output = match command {
        AdminCommand::Check | AdminCommand::Backup { .. } | AdminCommand::Restore { .. } => {
            unreachable!("handled without a runtime")
        }
        AdminCommand::Tenant(TenantCommand::Create { domain, display_name }) => {
            let display_name = display_name.unwrap_or_else(|| domain.clone());
            let tenant = directory::create_tenant(&store, &domain, &display_name, now).await?;
            json!({ "tenantId": tenant.id, "domain": tenant.domain, "displayName": tenant.display_name })
        }
        AdminCommand::Tenant(TenantCommand::List) => {
            let tenants = store.read(|tx| tx.tenants_list()).await?;
            json!(tenants.iter().map(|tenant| json!({ "tenantId": tenant.id, "domain": tenant.domain, "displayName": tenant.display_name })).collect::<Vec<_>>())
        }
        AdminCommand::User(UserCommand::Create { tenant, upn, display_name, admin, password }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(random_password);
            let display_name = display_name.unwrap_or_else(|| upn.clone());
            let user =
                directory::create_user(&store, &tenant, &upn, &display_name, &password, admin, now)
                    .await?;
            let mut output = json!({ "id": user.id, "userPrincipalName": user.upn, "tenantId": user.tenant_id, "isAdmin": user.is_admin });
            if generated {
                output["password"] = json!(password);
            }
            output
        }
        AdminCommand::User(UserCommand::List { tenant }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let users = store.read(move |tx| tx.users_of_tenant(&tenant.id)).await?;
            json!(users.iter().map(|user| json!({ "id": user.id, "userPrincipalName": user.upn, "displayName": user.display_name, "isAdmin": user.is_admin })).collect::<Vec<_>>())
        }
        AdminCommand::App(AppCommand::Create { tenant, display_name, multi_tenant }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let audience = if multi_tenant { "AzureADMultipleOrgs" } else { "AzureADMyOrg" };
            let application = directory::register_application(
                &store,
                &tenant,
                &display_name,
                audience,
                None,
                Vec::new(),
                now,
            )
            .await?;
            // Two years, as Entra's default.
            let end = store::Timestamp(now.0 + 2 * 365 * 24 * 3600 * 1000);
            let (_, secret) = directory::add_password(&store, &application, None, now, end).await?;
            json!({ "appId": application.app_id, "id": application.id, "tenantId": tenant.id, "signInAudience": application.sign_in_audience, "password": secret })
        }
        AdminCommand::App(AppCommand::List { tenant }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let applications = store.read(move |tx| tx.applications_of_tenant(&tenant.id)).await?;
            json!(applications.iter().map(|application| json!({ "appId": application.app_id, "id": application.id, "displayName": application.display_name, "signInAudience": application.sign_in_audience })).collect::<Vec<_>>())
        }
        AdminCommand::Sp(SpCommand::Create { tenant, app_id }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let (service_principal, _) =
                directory::create_service_principal(&store, &tenant, &app_id, now).await?;
            json!({ "id": service_principal.id, "appId": service_principal.app_id, "tenantId": service_principal.tenant_id })
        }
        AdminCommand::Subscription(SubscriptionCommand::Create { tenant, display_name }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let subscription = store::authorization::SubscriptionRecord {
                id: uuid::Uuid::new_v4().to_string(),
                tenant_id: tenant.id.clone(),
                display_name,
                state: "Enabled".to_owned(),
            };
            let stored = subscription.clone();
            store.write(move |tx| tx.subscription_create(&stored, now)).await?;
            arm::subscription::subscription_json(&subscription)
        }
        AdminCommand::Subscription(SubscriptionCommand::List { tenant }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let subscriptions =
                store.read(move |tx| tx.subscriptions_of_tenant(&tenant.id)).await?;
            json!(
                subscriptions.iter().map(arm::subscription::subscription_json).collect::<Vec<_>>()
            )
        }
        AdminCommand::Role(RoleCommand::Assign { scope, role, assignee }) => {
            let role = arm::rbac::built_in_role(&role)
                .with_context(|| format!("{role:?} is not a built-in role"))?;
            let subscription_id = store::authorization::subscription_of_scope(&scope)
                .with_context(|| format!("{scope:?} is not a scope inside a subscription"))?;
            let (principal_id, principal_type) = store
                .read(move |tx| {
                    let Some(subscription) = tx.subscription_get(&subscription_id)? else { return Ok(None) };
                    if let Some(user) = tx.user_by_upn(&assignee)?.or(tx.user_get(&assignee)?) {
                        return Ok((user.tenant_id == subscription.tenant_id).then_some((user.id, "User")));
                    }
                    let service_principal = match tx.service_principal_get(&assignee)? {
                        Some(found) => Some(found),
                        None => tx.service_principal_find(&subscription.tenant_id, &assignee)?,
                    };
                    Ok::<_, store::error::StoreError>(
                        service_principal
                            .filter(|found| found.tenant_id == subscription.tenant_id)
                            .map(|found| (found.id, "ServicePrincipal")),
                    )
                })
                .await?
                .context("no such user or service principal in the scope's tenant (or no such subscription)")?;
            let assignment = arm::rbac::assign(
                &store,
                arm::rbac::NewAssignment {
                    name: None,
                    scope: &scope,
                    role,
                    principal_id: &principal_id,
                    principal_type,
                    created_by: None,
                },
                now,
            )
            .await?
            .0;
            json!({
                "name": assignment.name, "scope": assignment.scope, "roleName": role.role_name,
                "roleDefinitionId": assignment.role_definition_id, "principalId": assignment.principal_id,
                "principalType": assignment.principal_type,
            })
        }
        AdminCommand::Keys(KeysCommand::Rotate) => {
            let kek = server::files::load_kek(kek, data_dir)?;
            let kid = identity::rotate_keys(&store, &kek, now).await?;
            json!({ "kid": kid, "signsWithin": format!("{} seconds on every replica", identity::KEY_RELOAD_MS / 1000) })
        }
        AdminCommand::User(UserCommand::Disable { user }) => {
            let user = directory::user(&store, &user).await?;
            directory::set_user_enabled(&store, &user.id, false).await?;
            json!({ "id": user.id, "userPrincipalName": user.upn, "accountEnabled": false })
        }
        AdminCommand::User(UserCommand::Enable { user }) => {
            let user = directory::user(&store, &user).await?;
            directory::set_user_enabled(&store, &user.id, true).await?;
            json!({ "id": user.id, "userPrincipalName": user.upn, "accountEnabled": true })
        }
        AdminCommand::User(UserCommand::Delete { user }) => {
            let user = directory::user(&store, &user).await?;
            directory::delete_user(&store, &user.id).await?;
            json!({ "id": user.id, "userPrincipalName": user.upn, "deleted": true })
        }
        AdminCommand::User(UserCommand::RevokeSessions { user }) => {
            let user = directory::user(&store, &user).await?;
            directory::revoke_user_tokens(&store, &user.id, now).await?;
            json!({ "id": user.id, "userPrincipalName": user.upn, "tokensRevoked": true })
        }
        AdminCommand::User(UserCommand::ResetPassword { user, password }) => {
            let user = directory::user(&store, &user).await?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(random_password);
            directory::reset_password(&store, &user.id, &password, now).await?;
            let mut output =
                json!({ "id": user.id, "userPrincipalName": user.upn, "tokensRevoked": true });
            if generated {
                output["password"] = json!(password);
            }
            output
        }
        AdminCommand::App(AppCommand::Delete { app_id }) => {
            let lookup = app_id.clone();
            let application = store
                .read(move |tx| tx.application_by_app_id(&lookup))
                .await?
                .with_context(|| format!("no app registration has the app id {app_id}"))?;
            directory::delete_application(&store, &application.id).await?;
            json!({ "appId": application.app_id, "id": application.id, "deleted": true })
        }
        AdminCommand::Sp(SpCommand::Delete { id, tenant }) => {
            let service_principal = match tenant {
                Some(tenant) => {
                    let tenant = directory::tenant(&store, &tenant).await?;
                    let app_id = id.clone();
                    store.read(move |tx| tx.service_principal_find(&tenant.id, &app_id)).await?
                }
                None => {
                    let lookup = id.clone();
                    store.read(move |tx| tx.service_principal_get(&lookup)).await?
                }
            }
            .with_context(|| format!("no service principal {id}"))?;
            directory::delete_service_principal(&store, &service_principal.id).await?;
            json!({ "id": service_principal.id, "appId": service_principal.app_id, "tenantId": service_principal.tenant_id, "deleted": true })
        }
        AdminCommand::Sp(SpCommand::List { tenant }) => {
            let tenant = directory::tenant(&store, &tenant).await?;
            let service_principals =
                store.read(move |tx| tx.service_principals_of_tenant(&tenant.id)).await?;
            json!(service_principals.iter().map(|sp| json!({ "id": sp.id, "appId": sp.app_id, "displayName": sp.display_name })).collect::<Vec<_>>())
        }
    };
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(())
}

/// A random password of letters and digits with the character classes password rules ask for.
fn random_password() -> String {
    format!("Cp1-{}", &identity::secret::new_client_secret().replace(['~', '-', '_'], "x")[..16])
}

fn serve(config: server::ServeConfig, grace: Duration) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let data_dir = config.data_dir.clone();
        let running = server::start(config).await?;
        println!("crosspool is listening on {}", running.origin);
        println!("trust its CA certificate: {}", running.ca_cert.display());
        if let Some(metrics_addr) = running.metrics_addr {
            println!("metrics: http://{metrics_addr}/metrics");
        }
        if running.demo.is_some() {
            println!("demo tenants, users and passwords: {}", data_dir.join("demo.json").display());
        }
        running.stop_on(stop_signal(), grace);
        running.wait().await?;
        println!("stopped");
        Ok(())
    })
}

/// SIGTERM (what service managers send) or Ctrl-C.
async fn stop_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(terminate) => terminate,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
