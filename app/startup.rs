//! Building the HTTP application. The listener is bound first so that port 0 works in tests.

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpRequest, HttpResponse, HttpServer};
use secrecy::SecretString;
use std::net::{SocketAddr, TcpListener};

use crate::auth::{ApiCredentials, Authenticator};
use crate::config::BillingSettings;
use crate::heavy::{HeavyLimits, HeavyWork};
use crate::influx::{InfluxClient, InfluxConfig};
use crate::metering::Metering;
use crate::users::Db;
use crate::{api, health};

/// What every handler can reach.
pub struct AppState {
    pub influx: InfluxClient,
    pub auth: Authenticator,
    pub db: Option<Db>,
    /// The statement engine (API, dashboard) and the default billing modes.
    pub metering: Metering,
    pub billing: BillingSettings,
    /// Bounds on statements, aggregations and charts.
    pub heavy: HeavyWork,
}

pub struct Settings {
    pub listen: SocketAddr,
    pub influx: InfluxConfig,
    pub api_credential: Option<(String, SecretString)>,
    /// Users, sessions, export runs (migrated already).
    pub db: Option<Db>,
    pub billing: BillingSettings,
    pub limits: HeavyLimits,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (KUBEMETER_LISTEN): {e}",
                settings.listen
            )
        })?;
        let port = listener.local_addr()?.port();
        let influx = InfluxClient::new(settings.influx);
        let state = web::Data::new(AppState {
            metering: settings.billing.metering(influx.clone()),
            billing: settings.billing,
            influx,
            auth: Authenticator::new(
                ApiCredentials::new(settings.api_credential),
                settings.db.clone(),
            ),
            db: settings.db,
            heavy: HeavyWork::new(settings.limits),
        });
        let metrics = web::Data::new(crate::http_metrics::HttpMetrics::default());
        let server = HttpServer::new(move || {
            App::new()
                .wrap(middleware::from_fn(crate::http_metrics::measure))
                .app_data(state.clone())
                .app_data(metrics.clone())
                .route("/metrics", web::get().to(crate::http_metrics::render))
                .configure(health::config)
                .configure(api::config)
                .configure(crate::web::config)
                .default_service(web::to(not_found))
        })
        .on_connect(crate::disconnect::remember_socket)
        // Within a pod's default 30 s grace period, with time to spare.
        .shutdown_timeout(10)
        .listen(listener)?
        .run();
        Ok(Application { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server from elsewhere (`kubemeter demo` stops its parts itself).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().body(format!("Nothing here: {}\n", req.path()))
}
