-- wrk script: start a login (POST /_security/oidc/prepare for realm oidc1): one shared
-- pending-login row per request on PostgreSQL.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"realm":"oidc1"}'
