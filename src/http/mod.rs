//! The HTTP layer: the server's start-up and shutdown, the routes, the shared
//! state, the handler that runs the request pipeline, CORS, the admin server
//! and the watch that notices a client hanging up (`disconnect`).
//!
//! It owns everything that knows about actix-web and sockets, and nothing that
//! decides what a call means: the pipeline stages (`crate::pipeline`) never
//! import this layer; they take plain values and give back plain values.

pub mod admin;
pub mod cors;
pub mod disconnect;
mod handler;
pub mod server;
pub mod state;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{web, App};

pub use state::{AppState, WorkerPool};

/// The gateway's application for one worker: CORS around the routes. The
/// server's factory and the tests build it with this one function.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .wrap(actix_web::middleware::from_fn(cors::middleware))
        .configure(routes(state))
}

/// Register the gateway's routes; `App::new().configure(http::routes(state))`.
/// Call it inside the `HttpServer` factory: actix runs the factory on each
/// worker thread, and each call takes that worker's request pool.
pub fn routes(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let extra: Vec<(String, String)> = state.config.routes.clone();
        cfg.app_data(web::Data::new(WorkerPool(state.pools.assign())));
        if let Some(replicas) = &state.replicas {
            cfg.app_data(web::Data::new(replicas.assign()));
        }
        cfg.app_data(web::Data::from(state.cors.clone()));
        cfg.app_data(state);
        cfg.service(
            web::resource("/")
                .route(web::get().to(handler::openapi_root))
                .route(web::head().to(handler::openapi_root))
                .default_service(web::to(handler::root_method_not_allowed)),
        );
        cfg.service(web::resource("/rpc/{name}").route(web::route().to(handler::rpc)));
        for (path, function) in extra {
            cfg.service(
                web::resource(path)
                    .app_data(web::Data::new(handler::RouteTarget(function)))
                    .route(web::route().to(handler::routed)),
            );
        }
        cfg.default_service(web::route().to(handler::not_found));
    }
}
