-- wrk script: issue a token for the caller with the client_credentials grant.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"grant_type":"client_credentials"}'
