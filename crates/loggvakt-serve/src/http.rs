//! The HTTP side: the FHIR REST API (create, batch/transaction, ITI-81 search, read,
//! metadata), Prometheus metrics and the health checks. Every answer to a write is given
//! after the writer's group commit; every FHIR error is an OperationOutcome.

// Handlers return their error answer as `Err(Response)`: it is the answer itself, built on
// the cold path, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, LOCATION, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use loggvakt_fhir::{decode_bundle_message, decode_message, Decoded, Rejection, RejectionKind};
use loggvakt_journal::{PreparedRecord, QuarantineEntry};
use loggvakt_model::codes::actions;
use loggvakt_model::{AccessEvent, Timestamp};
use serde_json::{json, Value};

use crate::config::{Limits, SearchScope};
use crate::fhir_out::{audit_event, capability_statement, outcome};
use crate::identity::{Source, Sources};
use crate::metrics::{Metrics, Refusal, Transport};
use crate::search::{parse_query, read_sealed_seq, search_sealed, SearchQuery, MAX_WINDOW};
use crate::writer::{now, quarantine_entry, Item, ItemOutcome, SubmitError, WriterHandle};

pub type Resp = Response<Full<Bytes>>;

/// What the handlers share.
pub struct App {
    pub writer: WriterHandle,
    pub sources: Sources,
    pub contexts: crate::context::SourceContexts,
    pub quarantine_budget: crate::budget::QuarantineBudget,
    /// Turns to search: at most `limits.concurrent_searches` at once...
    pub searches: tokio::sync::Semaphore,
    /// ... read on as many threads at low priority.
    pub search_pool: Arc<rayon::ThreadPool>,
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
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                Bytes::from(app.metrics.render((app.writer.depth() as u64, app.writer.capacity() as u64), &sources)),
            )
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
        return Err(problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "not-supported", &format!("Content-Type '{content_type}' is not FHIR JSON; send application/fhir+json"), None));
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
    // A writer that stopped (a full disk, a failed fsync) is restarted by the supervisor,
    // and recovery runs: the sender is told when to try again, as for a full queue.
    let unavailable = |why: String| {
        let mut r = problem(StatusCode::SERVICE_UNAVAILABLE, "transient", &format!("not stored: {why}"), None);
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(app.limits.retry_after_secs));
        r
    };
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
        Ok(Err(stopped)) => Err(unavailable(stopped.reason)),
        Err(_) => Err(unavailable("the writer stopped".into())),
    }
}

/// 400 for what is not FHIR JSON of a resource at all, 422 for a resource that cannot be mapped.
fn rejection_status(kind: RejectionKind) -> StatusCode {
    match kind {
        RejectionKind::Structure => StatusCode::BAD_REQUEST,
        RejectionKind::Content => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn issue_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "structure",
        StatusCode::FORBIDDEN => "forbidden",
        _ => "processing",
    }
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
        ItemOutcome::Conflict => {
            problem(StatusCode::CONFLICT, "conflict", "an event with this id from this system was stored before with different content; this one is kept in the quarantine", None)
        }
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

fn context<'a>(app: &'a App, source: &Source) -> Result<crate::context::ContextReadGuard<'a>, Resp> {
    app.contexts.read(source).ok_or_else(|| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", "the source's context is unavailable", None))
}

/// Keeps refused input in the quarantine, if the source's quarantine budget has room:
/// otherwise 429 and nothing is kept (the sender still has it, and learns why).
async fn quarantine(app: &App, source: &Arc<Source>, entry: QuarantineEntry, refused: u64) -> Result<(), Resp> {
    let bytes = entry.raw.as_ref().map_or(0, String::len) + entry.raw_base64.as_ref().map_or(0, String::len) + entry.reason.len();
    if let Err(why) = app.quarantine_budget.charge(&source.name, bytes as u64) {
        app.metrics.refused(Refusal::QuarantineBudget);
        let mut r = problem(StatusCode::TOO_MANY_REQUESTS, "throttled", &format!("{why}; nothing was stored or kept: fix the input and send it again"), None);
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(app.quarantine_budget.retry_after_secs()));
        return Err(r);
    }
    commit(app, source, vec![Item::Quarantine(entry)]).await?;
    app.metrics.quarantined(Transport::Http, refused);
    Ok(())
}

async fn post_audit_event(app: &App, conn: &Conn, req: Request<Incoming>) -> Result<Resp, Resp> {
    let (source, body, at) = receive(app, conn, req).await?;
    let decoded = decode_message(&body, &*context(app, &source)?, at, app.limits.max_body_bytes);
    let mut decoded = decoded.into_iter();
    let refusal = match (decoded.next(), decoded.next()) {
        (Some(Decoded::Event { entry: None, event }), None) => match source.policy.authorise_event(&event) {
            Ok(()) => {
                let outcomes = commit(app, &source, vec![Item::Event { record: PreparedRecord::new(event), raw: body, entry: None }]).await?;
                return Ok(stored_response(outcomes.first().unwrap_or(&ItemOutcome::Quarantined)));
            }
            Err(forbidden) => {
                app.metrics.refused(Refusal::Forbidden);
                (StatusCode::FORBIDDEN, forbidden.to_string(), Some(forbidden.expression().to_owned()))
            }
        },
        (Some(Decoded::Rejected(Rejection { entry: None, reason, kind, expression, .. })), None) => (rejection_status(kind), reason, expression),
        (Some(Decoded::Context { resource, .. }), None) => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "not-supported",
                &format!("{} is a context resource; POST /fhir/AuditEvent takes one AuditEvent (send context resources in a Bundle to POST /fhir)", resource.key),
                Some("resourceType"),
            ))
        }
        _ => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "not-supported",
                "this is a Bundle; POST Bundles to /fhir, and single AuditEvents to /fhir/AuditEvent",
                Some("resourceType"),
            ))
        }
    };
    let (status, why, path) = refusal;
    quarantine(app, &source, quarantine_entry(Transport::Http, &source, at, None, why.clone(), &body), 1).await?;
    Ok(problem(status, issue_code(status), &format!("{why} (kept in the quarantine)"), path.as_deref()))
}

/// What became of one Bundle entry before it reached the writer.
enum Plan {
    ToWriter,
    Refused { status: StatusCode, reason: String, expression: Option<String> },
}

async fn post_bundle(app: &App, conn: &Conn, req: Request<Incoming>) -> Result<Resp, Resp> {
    let (source, body, at) = receive(app, conn, req).await?;
    let decoded = decode_bundle_message(&body, &*context(app, &source)?, at, app.limits.max_body_bytes);
    let (kind, decoded) = match decoded {
        Ok(d) => d,
        Err(Rejection { reason, kind, expression, .. }) => {
            quarantine(app, &source, quarantine_entry(Transport::Http, &source, at, None, reason.clone(), &body), 1).await?;
            return Err(problem(
                rejection_status(kind),
                "structure",
                &format!("{reason} (kept in the quarantine); POST /fhir takes a batch or transaction Bundle"),
                expression.as_deref(),
            ));
        }
    };
    if !matches!(kind.as_str(), "batch" | "transaction") {
        return Err(problem(StatusCode::BAD_REQUEST, "not-supported", &format!("Bundle.type is '{kind}'; POST /fhir takes batch or transaction"), Some("Bundle.type")));
    }
    let transaction = kind == "transaction";
    let mut plans = Vec::with_capacity(decoded.len());
    let mut items = Vec::with_capacity(decoded.len());
    let mut learnt = Vec::new();
    for d in decoded {
        match d {
            Decoded::Event { event, entry } => match source.policy.authorise_event(&event) {
                Ok(()) => {
                    plans.push(Plan::ToWriter);
                    items.push(Item::Event { record: PreparedRecord::new(event), raw: body.clone(), entry });
                }
                Err(forbidden) => {
                    app.metrics.refused(Refusal::Forbidden);
                    plans.push(Plan::Refused { status: StatusCode::FORBIDDEN, reason: forbidden.to_string(), expression: Some(forbidden.expression().to_owned()) });
                }
            },
            Decoded::Context { resource, .. } => {
                plans.push(Plan::ToWriter);
                items.push(Item::Context(Bytes::from(resource.raw.clone())));
                learnt.push(resource);
            }
            Decoded::Rejected(r) => plans.push(Plan::Refused { status: rejection_status(r.kind), reason: r.reason, expression: r.expression }),
        }
    }
    if let Some(why) = app.contexts.over_limit(&source, &learnt.iter().collect::<Vec<_>>()) {
        app.metrics.refused(Refusal::QuarantineBudget);
        return Err(problem(StatusCode::TOO_MANY_REQUESTS, "throttled", &why, None));
    }
    let refused: Vec<(usize, StatusCode, &str)> =
        plans.iter().enumerate().filter_map(|(i, p)| if let Plan::Refused { status, reason, .. } = p { Some((i, *status, reason.as_str())) } else { None }).collect();
    if transaction && !refused.is_empty() {
        // All or nothing: nothing is stored or learnt, and the whole Bundle is kept once
        // (no entries listed: a retry maps all of it, as nothing of it was stored).
        let summary = crate::writer::summarise(refused.iter().map(|(i, _, r)| (*i, *r)));
        let entry = quarantine_entry(Transport::Http, &source, at, None, summary, &body);
        quarantine(app, &source, entry, refused.len() as u64).await?;
        let issues: Vec<Value> = refused
            .iter()
            .map(|(i, s, r)| json!({ "severity": "error", "code": issue_code(*s), "diagnostics": format!("entry[{i}]: {r}"), "expression": [format!("Bundle.entry[{i}].resource")] }))
            .collect();
        let status = if refused.iter().all(|(_, s, _)| *s == StatusCode::FORBIDDEN) { StatusCode::FORBIDDEN } else { StatusCode::BAD_REQUEST };
        return Err(fhir(status, &json!({ "resourceType": "OperationOutcome", "issue": issues })));
    }
    if !refused.is_empty() {
        // The refused entries of a batch are kept together, with the request's bytes once.
        let failures: Vec<(Option<usize>, &str)> = refused.iter().map(|(i, _, r)| (Some(*i), *r)).collect();
        let entry = crate::writer::grouped_quarantine_entry(Transport::Http, &source, at, &failures, &body);
        quarantine(app, &source, entry, refused.len() as u64).await?;
    }
    let outcomes = commit(app, &source, items).await?;
    // Learnt only now: context from a request that was refused or not made durable must
    // not change what later events mean.
    app.contexts.learn(&source, &learnt);
    let mut outcomes = outcomes.into_iter();
    let entries: Vec<Value> = plans
        .into_iter()
        .map(|plan| match plan {
            Plan::ToWriter => entry_response(&outcomes.next().unwrap_or(ItemOutcome::Quarantined)),
            Plan::Refused { status, reason, expression } => json!({ "response": {
                "status": status_line(status),
                "outcome": outcome("error", issue_code(status), &format!("{reason} (kept in the quarantine)"), expression.as_deref()),
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
        ItemOutcome::Duplicate => {
            json!({ "response": { "status": "200 OK", "outcome": outcome("information", "duplicate", "already stored: acknowledged again, stored once", None) } })
        }
        ItemOutcome::Conflict => {
            json!({ "response": { "status": "409 Conflict", "outcome": outcome("error", "conflict", "this id was stored before with different content; kept in the quarantine", None) } })
        }
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
/// looked at the log is the same log. One record per patient whose events the answer
/// shows (or the patient asked about, when none matched), so each patient's "who looked
/// at my record" finds it; one without a patient when the answer shows none.
async fn log_read(app: &App, source: &Arc<Source>, patients: &[&str], detail: String) -> Result<(), Resp> {
    let at = now();
    let own = |i: usize, patient: Option<&str>| {
        let mut event = loggvakt_journal::own::event(format!("read:{}:{}:{i}", source.name, at.0), &source.tenant_orgnr, actions::SEARCH, "ITI-81", at, detail.clone());
        event.user_local_id = Some(source.name.to_string());
        event.record_part = Some("AuditEvent".into());
        if let Some(p) = patient {
            event.patient_id_kind = loggvakt_model::ids::validate_person_id(p).ok().map(|k| k.code().to_owned());
            event.patient_id = Some(p.to_owned());
        }
        Item::Own(PreparedRecord::new(event))
    };
    let items: Vec<Item> = if patients.is_empty() { vec![own(0, None)] } else { patients.iter().enumerate().map(|(i, p)| own(i, Some(p))).collect() };
    commit(app, source, items).await?;
    app.metrics.searches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The first `window` matches and their count: the segments, then the unsealed records they
/// do not cover yet.
fn search_both(store: &std::path::Path, q: &SearchQuery, unsealed: &[crate::unsealed::Chunk], window: usize) -> Result<crate::search::Matches, loggvakt_journal::JournalError> {
    let mut found = search_sealed(store, q, window)?;
    let (sealed_through, before) = (found.covered_through, q.before.unwrap_or(u64::MAX));
    for (seq, e) in unsealed.iter().flat_map(|chunk| chunk.iter()) {
        if *seq > sealed_through && *seq < before && q.matches(e) {
            found.offer(*seq, window, || AccessEvent::clone(e));
        }
    }
    Ok(found)
}

async fn search(app: &App, conn: &Conn, req: Request<Incoming>) -> Result<Resp, Resp> {
    let source = authenticate(app, conn, &req)?;
    let tenant = search_scope(app, &source)?;
    let raw_query = req.uri().query().unwrap_or("").to_owned();
    let mut q: SearchQuery = parse_query(&raw_query, app.limits.search_page_size)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, "not-supported", &format!("search parameter '{}' {}", e.param, e.message), Some(&e.param)))?;
    let window = q.offset.saturating_add(q.count);
    if window > MAX_WINDOW {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "too-costly",
            &format!("_offset + _count is {window}, past the {MAX_WINDOW} results a search pages to; narrow the search (date=ge…&date=lt…, patient, agent)"),
            Some("_offset"),
        ));
    }
    q.tenant = tenant;
    q.before.get_or_insert(app.metrics.durable_seq.load(std::sync::atomic::Ordering::Relaxed) + 1);
    // A few searches at a time: each holds at most `window` events and a snapshot of
    // pointers, so memory is bounded by limits.concurrent_searches × MAX_WINDOW events.
    let _turn = app.searches.acquire().await.map_err(|_| problem(StatusCode::SERVICE_UNAVAILABLE, "transient", "the daemon is stopping", None))?;
    // The unsealed records first (a snapshot of pointers): a record sealed meanwhile is then
    // found in both places (and counted once, by the segments), never in neither. Both are
    // read on the search threads (low priority); the writer is not asked.
    let unsealed = app.writer.shared.unsealed.snapshot();
    let (store, sealed_q) = (app.store.clone(), q.clone());
    let (done, result) = tokio::sync::oneshot::channel();
    app.search_pool.spawn(move || {
        let _ = done.send(search_both(&store, &sealed_q, &unsealed, window));
    });
    let found = result
        .await
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &e.to_string(), None))?
        .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &format!("the store could not be read: {e}"), None))?;
    let total = found.total;
    let shown: Vec<(&u64, &AccessEvent)> = found.first.iter().skip(q.offset).take(q.count).collect();
    let mut patients: Vec<&str> = shown.iter().filter_map(|(_, e)| e.patient_id.as_deref()).collect();
    patients.sort_unstable();
    patients.dedup();
    if patients.is_empty() {
        patients.extend(q.patient.as_deref());
    }
    log_read(app, &source, &patients, format!("ITI-81 search by source '{}': {raw_query} ({total} results)", source.name)).await?;
    let base = base_url(conn, &req);
    let page: Vec<Value> =
        shown.iter().map(|(seq, e)| json!({ "fullUrl": format!("{base}/AuditEvent/{seq}"), "resource": audit_event(**seq, e), "search": { "mode": "match" } })).collect();
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
    let mut found = app.writer.shared.unsealed.get(seq).map(|e| AccessEvent::clone(&e));
    if found.is_none() {
        let store = app.store.clone();
        found = tokio::task::spawn_blocking(move || read_sealed_seq(&store, seq))
            .await
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &e.to_string(), None))?
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, "exception", &format!("the store could not be read: {e}"), None))?;
    }
    let event = found.filter(|e| tenant.as_ref().is_none_or(|t| *t == e.tenant_orgnr)).ok_or_else(not_found)?;
    log_read(app, &source, &event.patient_id.as_deref().into_iter().collect::<Vec<_>>(), format!("read of AuditEvent/{seq} by source '{}'", source.name)).await?;
    Ok(fhir(StatusCode::OK, &audit_event(seq, &event)))
}
