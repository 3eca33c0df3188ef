// Function calls through HTTP: arguments, methods and result shapes.

use crate::harness::*;

#[actix_web::test]
async fn scalar_with_named_arguments_and_default() {
    let ctx = setup().await;
    let app = ctx.app().await;
    let r = send(&app, post("/rpc/add", r#"{"a": 2, "b": 3}"#)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "5");
    assert_eq!(r.header("content-type").as_deref(), Some("application/json; charset=utf-8"));
    let r = send(&app, post("/rpc/add", r#"{"a": 2}"#)).await;
    assert_eq!(r.body, "3");
}
