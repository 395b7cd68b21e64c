//! The HTTP side: the FHIR REST API (create, batch/transaction, ITI-81 search, read,
//! metadata), Prometheus metrics and the health checks. Every answer to a write is given
//! after the writer's group commit; every FHIR error is an OperationOutcome.

// Handlers return their error answer as `Err(Response)`: it is the answer itself, built on
// the cold path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use loggvakt_fhir::{decode_bundle_message, decode_message, ContextIndex, Decoded, Rejection};
use loggvakt_journal::PreparedRecord;
use loggvakt_model::codes::actions;
use loggvakt_model::{AccessEvent, Timestamp};
use serde_json::{json, Value};

use crate::config::{Limits, SearchScope};
use crate::fhir_out::{audit_event, capability_statement, outcome, path_of};
use crate::identity::{Source, Sources};
use crate::metrics::{Metrics, Refusal, Transport};
use crate::search::{parse_query, read_sealed_seq, search_sealed, SearchQuery};
use crate::writer::{now, own_event, quarantine_entry, Item, ItemOutcome, SubmitError, WriterHandle};

pub type Resp = Response<Full<Bytes>>;

/// What the handlers share.
pub struct App {
    pub writer: WriterHandle,
    pub sources: Sources,
    pub context: RwLock<ContextIndex>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub store: std::path::PathBuf,
}

/// What is known of a connection before its requests are read.
pub struct Conn {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The source whose client certificate the peer presented.
    pub cert_source: Option<Arc<Source>>,
    /// SHA-256 of a client certificate that no source is configured with (hex).
    pub unknown_cert: Option<String>,
}

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

fn respond(status: StatusCode, content_type: &str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")));
    r
}

fn fhir(status: StatusCode, body: &Value) -> Resp {
    respond(status, FHIR_JSON, Bytes::from(serde_json::to_vec(body).unwrap_or_default()))
}

fn problem(status: StatusCode, code: &str, diagnostics: &str, expression: Option<&str>) -> Resp {
    fhir(status, &outcome(if status.is_success() { "information" } else { "error" }, code, diagnostics, expression))
}

fn text(status: StatusCode, body: String) -> Resp {
    respond(status, "text/plain; charset=utf-8", Bytes::from(body))
}

pub async fn handle(app: Arc<App>, conn: Arc<Conn>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let method = req.method().as_str().to_owned();
    let response = match (method.as_str(), path.as_str()) {
        ("GET", "/healthz") => text(StatusCode::OK, "ok\n".into()),
        ("GET", "/readyz") => readyz(&app),
        ("GET", "/metrics") => {
            let sources = app.writer.shared.source_metrics.lock().map(|s| s.clone()).unwrap_or_default();
            respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", Bytes::from(app.metrics.render((app.writer.depth() as u64, app.writer.capacity() as u64), &sources)))
        }
        ("GET", "/fhir/metadata") => fhir(StatusCode::OK, &capability_statement(&base_url(&conn, &req))),
        ("POST", "/fhir/AuditEvent") => post_audit_event(&app, &conn, req).await.unwrap_or_else(|r| r),
        ("POST", "/fhir") => post_bundle(&app, &conn, req).await.unwrap_or_else(|r| r),
        ("GET", "/fhir/AuditEvent") => search(&app, &conn, req).await.unwrap_or_else(|r| r),
        ("GET", p) if p.starts_with("/fhir/AuditEvent/") => read(&app, &conn, &req, &p["/fhir/AuditEvent/".len()..]).await.unwrap_or_else(|r| r),
        (_, "/fhir/AuditEvent" | "/fhir" | "/fhir/metadata" | "/healthz" | "/readyz" | "/metrics") => {
            problem(StatusCode::METHOD_NOT_ALLOWED, "not-supported", &format!("{method} is not supported on {path}"), None)
        }
        _ => problem(
            StatusCode::NOT_FOUND,
            "not-found",
            &format!("no such endpoint: {path} (the FHIR API is under /fhir: POST /fhir/AuditEvent, POST /fhir, GET /fhir/AuditEvent, GET /fhir/metadata)"),
            None,
        ),
    };
    Ok(response)
}

fn readyz(app: &App) -> Resp {
    if !app.writer.is_ready() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "not ready: the store cannot take writes\n".into());
    }
    if app.writer.depth() >= app.writer.capacity() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "not ready: the queue is full\n".into());
    }
    text(StatusCode::OK, "ready\n".into())
}

fn base_url(conn: &Conn, req: &Request<Incoming>) -> String {
    let host = req.headers().get(HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("{}://{host}/fhir", if conn.tls { "https" } else { "http" })
}

fn authenticate(app: &App, conn: &Conn, req: &Request<Incoming>) -> Result<Arc<Source>, Resp> {
    if let Some(source) = &conn.cert_source {
        return Ok(source.clone());
    }
    let refuse = |why: String| {
        app.metrics.refused(Refusal::Unauthenticated);
        crate::log::log("warn", "http_unauthenticated", json!({ "peer": conn.peer.to_string(), "why": &why }));
        let mut r = problem(StatusCode::UNAUTHORIZED, "login", &why, None);
        r.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer realm=\"loggvakt\""));
        r
    };
    let bearer = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    match bearer {
        Some(token) => app.sources.by_token(token.trim()).cloned().ok_or_else(|| refuse("the bearer token is not that of any configured source".into())),
        None => Err(refuse(match &conn.unknown_cert {
            Some(fp) => format!("the client certificate (SHA-256 {fp}) is not configured for any source, and no bearer token was sent"),
            None => "unknown source: send a client certificate or a bearer token (Authorization: Bearer ...) configured for a source".into(),
        })),
    }
}

async fn read_body(app: &App, req: Request<Incoming>) -> Result<Bytes, Resp> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim().to_owned();
    if !matches!(media.as_str(), "application/fhir+json" | "application/json" | "application/json+fhir") {
        app.metrics.refused(Refusal::UnsupportedMediaType);
        return Err(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            &format!("Content-Type '{content_type}' is not FHIR JSON; send application/fhir+json"),
            None,
        ));
    }
    let max = app.limits.max_body_bytes;
    let too_large = |len: String| {
        app.metrics.refused(Refusal::TooLarge);
        problem(StatusCode::PAYLOAD_TOO_LARGE, "too-long", &format!("the request body is {len} bytes, over the limit of {max} bytes; send smaller Bundles"), None)
    };
    if let Some(len) = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > max as u64 {
            return Err(too_large(len.to_string()));
        }
    }
    let body = Limited::new(req.into_body(), max);
    match tokio::time::timeout(Duration::from_secs(app.limits.body_timeout_secs), body.collect()).await {
        Err(_) => {
            app.metrics.refused(Refusal::Timeout);
            Err(problem(StatusCode::REQUEST_TIMEOUT, "timeout", &format!("the request body did not arrive within {} s", app.limits.body_timeout_secs), None))
        }
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(too_large("more than that".into())),
        Ok(Err(e)) => Err(problem(StatusCode::BAD_REQUEST, "structure", &format!("the request body could not be read: {e}"), None)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Hands items to the writer and waits for the commit that makes them durable.
async fn commit(app: &App, source: &Arc<Source>, items: Vec<Item>) -> Result<Vec<ItemOutcome>, Resp> {
    let unavailable = |why: String| problem(StatusCode::SERVICE_UNAVAILABLE, "transient", &format!("not stored: {why}"), None);
    let rx = app.writer.try_submit(Transport::Http, source.clone(), items).map_err(|e| match e {
        SubmitError::Busy(_) => {
            app.metrics.refused(Refusal::QueueFull);
            let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, "transient", &format!("{e}; nothing was stored"), None);
            r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(app.limits.retry_after_secs));
            r
        }
        SubmitError::TooMany(..) => {
            app.metrics.refused(Refusal::TooLarge);
            problem(StatusCode::PAYLOAD_TOO_LARGE, "too-long", &e.to_string(), None)
        }
        SubmitError::Failed(why) => unavailable(why),
    })?;
    match rx.await {
        Ok(Ok(outcomes)) => Ok(outcomes),
        Ok(Err(why)) => Err(unavailable(why)),
        Err(_) => Err(unavailable("the writer stopped".into())),
    }
}

/// 400 for what is not FHIR JSON of the right kind at all, 422 for what is but cannot be mapped.
fn rejection_status(reason: &str) -> StatusCode {
    if ["invalid JSON", "truncated JSON", "not UTF-8", "resourceType", "over the limit"].iter().any(|m| reason.contains(m)) {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

fn forbidden_system(source: &Source, event: &AccessEvent) -> String {
    format!("source '{}' may not send events recorded by '{}' (it may send for: {})", source.name, event.source_system, source.systems.join(", "))
}

fn stored_response(outcome: &ItemOutcome) -> Resp {
    match outcome {
        ItemOutcome::Stored(seq) => {
            let mut r = problem(StatusCode::CREATED, "informational", &format!("stored durably as sequence number {seq}"), None);
            r.headers_mut().insert(LOCATION, HeaderValue::from_str(&format!("AuditEvent/{seq}/_history/1")).unwrap_or(HeaderValue::from_static("AuditEvent")));
            r.headers_mut().insert("x-loggvakt-seq", HeaderValue::from(*seq));
            r.headers_mut().insert("etag", HeaderValue::from_static("W/\"1\""));
            r
        }
        ItemOutcome::Duplicate => problem(StatusCode::OK, "duplicate", "already stored (a resend of the same event): acknowledged again, stored once", None),
        ItemOutcome::Conflict => problem(
            StatusCode::CONFLICT,
            "conflict",
            "an event with this id from this system was stored before with different content; this one is kept in the quarantine",
            None,
        ),
        ItemOutcome::Quarantined | ItemOutcome::Kept => problem(StatusCode::UNPROCESSABLE_ENTITY, "processing", "not stored as an event", None),
    }
}

/// The start of every write: who sends, the body, and when it arrived.
async fn receive(app: &App, conn: &Conn, req: Request<Incoming>) -> Result<(Arc<Source>, Bytes, Timestamp), Resp> {
    let source = authenticate(app, conn, &req)?;
    let body = read_body(app, req).await?;
    app.metrics.received(Transport::Http, 1);
    Ok((source, body, now()))
}

fn context(app: &App) -> Result<std::sync::RwLockReadGuard<'_, ContextIndex>, Resp> {
    app.context.read().map_err(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", "context index poisoned", None))
}

async fn post_audit_event(app: &App, conn: &Conn, req: Request<Incoming>) -> Result<Resp, Resp> {
    let (source, body, at) = receive(app, conn, req).await?;
    let decoded = decode_message(&body, &*context(app)?, at, app.limits.max_body_bytes);
    let mut decoded = decoded.into_iter();
    let (item, error) = match (decoded.next(), decoded.next()) {
        (Some(Decoded::Event { entry: None, event }), None) if !source.may_send_for(&event.source_system) => {
            let why = forbidden_system(&source, &event);
            (Item::Quarantine(quarantine_entry(Transport::Http, &source, at, None, why.clone(), &body)), Some((StatusCode::FORBIDDEN, "forbidden", why, None)))
        }
        (Some(Decoded::Event { entry: None, event }), None) => (Item::Event { record: PreparedRecord::new(event), raw: body, entry: None }, None),
        (Some(Decoded::Rejected(Rejection { entry: None, reason, .. })), None) => {
            let status = rejection_status(&reason);
            let path = path_of(&reason).map(str::to_owned);
            (Item::Quarantine(quarantine_entry(Transport::Http, &source, at, None, reason.clone(), &body)), Some((status, if status == StatusCode::BAD_REQUEST { "structure" } else { "processing" }, reason, path)))
        }
        (Some(Decoded::Context { resource, .. }), None) => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "not-supported",
                &format!("{} is a context resource; POST /fhir/AuditEvent takes one AuditEvent (send context resources in a Bundle to POST /fhir)", resource.key),
                Some("resourceType"),
            ))
        }
        _ => return Err(problem(StatusCode::BAD_REQUEST, "not-supported", "this is a Bundle; POST Bundles to /fhir, and single AuditEvents to /fhir/AuditEvent", Some("resourceType"))),
    };
    let outcomes = commit(app, &source, vec![item]).await?;
    if let Some((status, code, why, path)) = error {
        app.metrics.quarantined(Transport::Http, 1);
        return Ok(problem(status, code, &format!("{why} (kept in the quarantine)"), path.as_deref()));
    }
    Ok(stored_response(outcomes.first().unwrap_or(&ItemOutcome::Quarantined)))
}

/// What became of one Bundle entry before it reached the writer.
enum Plan {
    ToWriter,
    Refused { status: StatusCode, reason: String },
}

async fn post_bundle(app: &App, conn: &Conn, req: Request<Incoming>) -> Result<Resp, Resp> {
    let (source, body, at) = receive(app, conn, req).await?;
    let decoded = decode_bundle_message(&body, &*context(app)?, at, app.limits.max_body_bytes);
    let (kind, decoded) = match decoded {
        Ok(d) => d,
        Err(Rejection { reason, .. }) => {
            commit(app, &source, vec![Item::Quarantine(quarantine_entry(Transport::Http, &source, at, None, reason.clone(), &body))]).await?;
            app.metrics.quarantined(Transport::Http, 1);
            return Err(problem(rejection_status(&reason), "structure", &format!("{reason} (kept in the quarantine); POST /fhir takes a batch or transaction Bundle"), path_of(&reason)));
        }
    };
    if !matches!(kind.as_str(), "batch" | "transaction") {
        return Err(problem(StatusCode::BAD_REQUEST, "not-supported", &format!("Bundle.type is '{kind}'; POST /fhir takes batch or transaction"), Some("Bundle.type")));
    }
    let transaction = kind == "transaction";
    let mut plans = Vec::with_capacity(decoded.len());
    let mut items = Vec::with_capacity(decoded.len());
    for d in decoded {
        match d {
            Decoded::Event { event, .. } if !source.may_send_for(&event.source_system) => plans.push(Plan::Refused { status: StatusCode::FORBIDDEN, reason: forbidden_system(&source, &event) }),
            Decoded::Event { event, entry } => {
                plans.push(Plan::ToWriter);
                items.push(Item::Event { record: PreparedRecord::new(event), raw: body.clone(), entry });
            }
            Decoded::Context { resource, .. } => {
                plans.push(Plan::ToWriter);
                items.push(Item::Context(Bytes::from(resource.raw.clone())));
                if let Ok(mut context) = app.context.write() {
                    context.insert(&resource);
                }
            }
            Decoded::Rejected(r) => plans.push(Plan::Refused { status: rejection_status(&r.reason), reason: r.reason }),
        }
    }
    let refused: Vec<(usize, &StatusCode, &String)> = plans.iter().enumerate().filter_map(|(i, p)| if let Plan::Refused { status, reason } = p { Some((i, status, reason)) } else { None }).collect();
    if transaction && !refused.is_empty() {
        // All or nothing: nothing is stored, and the whole Bundle is kept for inspection.
        let summary: Vec<String> = refused.iter().map(|(i, _, r)| format!("entry[{i}]: {r}")).collect();
        commit(app, &source, vec![Item::Quarantine(quarantine_entry(Transport::Http, &source, at, None, summary.join("; "), &body))]).await?;
        app.metrics.quarantined(Transport::Http, 1);
        let issues: Vec<Value> = refused
            .iter()
            .map(|(i, _, r)| json!({ "severity": "error", "code": "processing", "diagnostics": format!("entry[{i}]: {r}"), "expression": [format!("Bundle.entry[{i}].resource")] }))
            .collect();
        let status = if refused.iter().all(|(_, s, _)| **s == StatusCode::FORBIDDEN) { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
        return Err(fhir(status, &json!({ "resourceType": "OperationOutcome", "issue": issues })));
    }
    for (i, _, reason) in &refused {
        items.push(Item::Quarantine(quarantine_entry(Transport::Http, &source, at, Some(*i), (*reason).clone(), &body)));
    }
    let n_refused = refused.len();
    let outcomes = commit(app, &source, items).await?;
    app.metrics.quarantined(Transport::Http, n_refused as u64);
    let mut outcomes = outcomes.into_iter();
    let entries: Vec<Value> = plans
        .into_iter()
        .map(|plan| match plan {
            Plan::ToWriter => entry_response(&outcomes.next().unwrap_or(ItemOutcome::Quarantined)),
            Plan::Refused { status, reason } => json!({ "response": {
                "status": status_line(status),
                "outcome": outcome("error", if status == StatusCode::FORBIDDEN { "forbidden" } else { "processing" }, &format!("{reason} (kept in the quarantine)"), path_of(&reason)),
            }}),
        })
        .collect();
    let kind = if transaction { "transaction-response" } else { "batch-response" };
    Ok(fhir(StatusCode::OK, &json!({ "resourceType": "Bundle", "type": kind, "entry": entries })))
}

fn status_line(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""))
}

fn entry_response(o: &ItemOutcome) -> Value {
    match o {
        ItemOutcome::Stored(seq) => json!({ "response": { "status": "201 Created", "location": format!("AuditEvent/{seq}/_history/1"), "etag": "W/\"1\"" } }),
        ItemOutcome::Duplicate => json!({ "response": { "status": "200 OK", "outcome": outcome("information", "duplicate", "already stored: acknowledged again, stored once", None) } }),
        ItemOutcome::Conflict => json!({ "response": { "status": "409 Conflict", "outcome": outcome("error", "conflict", "this id was stored before with different content; kept in the quarantine", None) } }),
        ItemOutcome::Kept => json!({ "response": { "status": "200 OK" } }),
        ItemOutcome::Quarantined => json!({ "response": { "status": "422 Unprocessable Entity" } }),
    }
}

/// The source may search, and within which organisation.
fn search_scope(app: &App, source: &Source) -> Result<Option<String>, Resp> {
    match source.search {
        SearchScope::None => {
            app.metrics.refused(Refusal::Forbidden);
            Err(problem(StatusCode::FORBIDDEN, "forbidden", &format!("source '{}' may not search the audit log (its search setting is \"none\")", source.name), None))
        }
        SearchScope::Tenant => Ok(Some(source.tenant_orgnr.clone())),
        SearchScope::All => Ok(None),
    }
}

/// Records a read of the store in the journal before its answer is sent: the log of who
/// looked at the log is the same log.
async fn log_read(app: &App, source: &Arc<Source>, patient: Option<&str>, detail: String) -> Result<(), Resp> {
    let at = now();
    let mut event = own_event(format!("read:{}:{}", source.name, at.0), &source.tenant_orgnr, actions::SEARCH, "ITI-81", at, detail);
    event.user_local_id = Some(source.name.to_string());
    event.record_part = Some("AuditEvent".into());
    if let Some(p) = patient {
        event.patient_id_kind = loggvakt_model::ids::validate_person_id(p).ok().map(|k| k.code().to_owned());
        event.patient_id = Some(p.to_owned());
    }
    commit(app, source, vec![Item::Own(PreparedRecord::new(event))]).await?;
    app.metrics.searches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

async fn search(app: &App, conn: &Conn, req: Request<Incoming>) -> Result<Resp, Resp> {
    let source = authenticate(app, conn, &req)?;
    let tenant = search_scope(app, &source)?;
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let mut q: SearchQuery = parse_query(&raw_query, app.limits.search_page_size)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, "not-supported", &format!("search parameter '{}' {}", e.param, e.message), Some(&e.param)))?;
    q.tenant = tenant;
    q.before.get_or_insert(app.metrics.durable_seq.load(std::sync::atomic::Ordering::Relaxed) + 1);
    let (store, sealed_q) = (app.store.clone(), q.clone());
    let unsealed_q = q.clone();
    // The writer's unsealed records first: a record sealed meanwhile is then found in both
    // places (and kept once), never in neither.
    let unsealed = app.writer.unsealed(move |_, e| unsealed_q.matches(e)).await.map_err(|e| problem(StatusCode::SERVICE_UNAVAILABLE, "transient", &e.to_string(), None))?;
    let sealed = tokio::task::spawn_blocking(move || search_sealed(&store, &sealed_q))
        .await
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &e.to_string(), None))?
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &format!("the store could not be read: {e}"), None))?;
    let mut all: std::collections::BTreeMap<u64, AccessEvent> = sealed.into_iter().collect();
    all.extend(unsealed);
    let before = q.before.unwrap_or(u64::MAX);
    all.retain(|seq, _| *seq < before);
    let total = all.len();
    log_read(app, &source, q.patient.as_deref(), format!("ITI-81 search by source '{}': {raw_query} ({total} results)", source.name)).await?;
    let base = base_url(conn, &req);
    let page: Vec<Value> = all
        .iter()
        .skip(q.offset)
        .take(q.count)
        .map(|(seq, e)| json!({ "fullUrl": format!("{base}/AuditEvent/{seq}"), "resource": audit_event(*seq, e), "search": { "mode": "match" } }))
        .collect();
    let mut links = vec![json!({ "relation": "self", "url": format!("{base}/AuditEvent?{}", q.link(&raw_query, q.offset)) })];
    if q.offset + q.count < total {
        links.push(json!({ "relation": "next", "url": format!("{base}/AuditEvent?{}", q.link(&raw_query, q.offset + q.count)) }));
    }
    if q.offset > 0 {
        links.push(json!({ "relation": "previous", "url": format!("{base}/AuditEvent?{}", q.link(&raw_query, q.offset.saturating_sub(q.count))) }));
    }
    Ok(fhir(StatusCode::OK, &json!({ "resourceType": "Bundle", "type": "searchset", "total": total, "link": links, "entry": page })))
}

async fn read(app: &App, conn: &Conn, req: &Request<Incoming>, id: &str) -> Result<Resp, Resp> {
    let source = authenticate(app, conn, req)?;
    let tenant = search_scope(app, &source)?;
    let id = id.split('/').next().unwrap_or(id);
    let not_found = || problem(StatusCode::NOT_FOUND, "not-found", &format!("AuditEvent/{id} is not in this store, or not in your organisation's part of it"), None);
    let seq: u64 = id.parse().map_err(|_| not_found())?;
    let mut found = app.writer.unsealed(move |s, _| s == seq).await.map_err(|e| problem(StatusCode::SERVICE_UNAVAILABLE, "transient", &e.to_string(), None))?.pop().map(|(_, e)| e);
    if found.is_none() {
        let store = app.store.clone();
        found = tokio::task::spawn_blocking(move || read_sealed_seq(&store, seq))
            .await
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &e.to_string(), None))?
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &format!("the store could not be read: {e}"), None))?;
    }
    let event = found.filter(|e| tenant.as_ref().is_none_or(|t| *t == e.tenant_orgnr)).ok_or_else(not_found)?;
    log_read(app, &source, event.patient_id.as_deref(), format!("read of AuditEvent/{seq} by source '{}'", source.name)).await?;
    Ok(fhir(StatusCode::OK, &audit_event(seq, &event)))
}
