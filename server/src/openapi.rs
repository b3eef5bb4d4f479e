//! The OpenAPI 3.1 document (`GET /api/v1/openapi.json`), assembled from what each surface
//! describes where it is handled: the decision API (`enforcement/api.rs`, its shapes in
//! `enforcement/schema.rs`), the registry's events (`inventory/events.rs`) and the
//! Harbor-compatible API (`harbor/`).

use utoipa::OpenApi;

/// The whole document: the decision API, the registry's events and the Harbor-compatible API, as JSON.
pub fn document() -> serde_json::Value {
    let mut document = crate::enforcement::api::ApiDoc::openapi();
    document.merge(crate::harbor::HarborDoc::openapi());
    document.merge(crate::inventory::events::EventsApi::openapi());
    document.merge(crate::audit::AuditApi::openapi());
    let mut document = serde_json::to_value(document).unwrap_or_default();
    link_the_rule_life_cycle(&mut document);
    mark_required_parameters(&mut document);
    document
}

/// Parameters described with their exact grammar (`schema_with`) come out of utoipa 5.5 without
/// `required`. Every path parameter is required (OpenAPI says it must be); so are the query
/// parameters the handler cannot do without.
fn mark_required_parameters(document: &mut serde_json::Value) {
    const REQUIRED_QUERY: &[(&str, &[&str])] = &[("/api/v1/projects/{project}/immutable", &["repository", "tag"])];
    let Some(paths) = document.get_mut("paths").and_then(|paths| paths.as_object_mut()) else { return };
    for (path, operations) in paths.iter_mut() {
        let required_query = REQUIRED_QUERY.iter().find(|(p, _)| p == path).map_or(&[][..], |(_, names)| *names);
        let operations = operations.as_object_mut().into_iter().flat_map(|operations| operations.values_mut());
        for parameter in operations.filter_map(|operation| operation.get_mut("parameters")?.as_array_mut()).flatten() {
            let location = parameter.get("in").and_then(|v| v.as_str()).unwrap_or_default();
            let name = parameter.get("name").and_then(|v| v.as_str()).unwrap_or_default();
            if location == "path" || (location == "query" && required_query.contains(&name)) {
                parameter["required"] = serde_json::Value::Bool(true);
            }
        }
    }
}

/// A rule created (its id in the body) can be listed, changed and deleted. Written as JSON:
/// utoipa 5.5 serialises a Link's `operationId` as `operation_id`.
fn link_the_rule_life_cycle(document: &mut serde_json::Value) {
    let rules = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules";
    let Some(created) = document.pointer_mut(&format!("/paths/{}/post/responses/201", rules.replace('/', "~1"))) else {
        return;
    };
    let project = "$request.path.project_name_or_id";
    created["links"] = serde_json::json!({
        "ListRules": { "operationId": "list_rules", "parameters": { "project_name_or_id": project } },
        "UpdateRule": { "operationId": "update_rule",
            "parameters": { "project_name_or_id": project, "immutable_rule_id": "$response.body#/id" } },
        "DeleteRule": { "operationId": "delete_rule",
            "parameters": { "project_name_or_id": project, "immutable_rule_id": "$response.body#/id" } },
    });
}
