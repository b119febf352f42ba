-- wrk script: issue access tokens with the client_credentials grant and write each one, a
-- line at a time, to "$HARVEST_OUT.<thread>". An answer that is not a 200 carrying an
-- `ora2_` access token is counted as failed; done() prints both counts, and bench/run.sh
-- fails the run on any failure. wrk runs until bench/run.sh has enough tokens and stops it.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"grant_type":"client_credentials"}'

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

function init(args)
  got, failed = 0, 0
  out = assert(io.open(os.getenv("HARVEST_OUT") .. "." .. id, "w"))
  out:setvbuf("line")
end

function response(status, headers, body)
  local token = status == 200 and body and body:match('"access_token":"(ora2_[%w_%-]+)"')
  if token and #token == 48 then
    out:write(token, "\n")
    got = got + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local got, failed = 0, 0
  for _, t in ipairs(threads) do
    got = got + t:get("got")
    failed = failed + t:get("failed")
  end
  io.write(string.format("harvest: %d tokens, %d failed answers\n", got, failed))
end
