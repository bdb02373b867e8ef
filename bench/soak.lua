-- Mixed soak traffic: valid, invalid, oversize and multi-image requests in rotation.
-- bench/soak.py writes the request bodies into the directory named by SOAK_DIR.
local dir = os.getenv("SOAK_DIR")
local function read(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local multipart = "multipart/form-data; boundary=latentservesoak"
local requests = {}

function init(args)
  requests = {
    wrk.format("POST", "/classify", {["Content-Type"] = multipart}, read("one.bin")),
    wrk.format("POST", "/embed", {["Content-Type"] = multipart}, read("four.bin")),
    wrk.format("POST", "/reconstruct", {["Content-Type"] = "application/json"}, read("array.json")),
    wrk.format("POST", "/classify", {["Content-Type"] = "text/plain"}, "not an image"),
    wrk.format("POST", "/classify", {["Content-Type"] = "image/png"}, read("truncated.png")),
    wrk.format("POST", "/embed", {["Content-Type"] = "image/png"}, read("oversize.bin")),
    wrk.format("POST", "/classify?model=nope", {["Content-Type"] = multipart}, read("one.bin")),
  }
  counter = 0
  ok, client_errors, server_errors, other = 0, 0, 0, 0
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end

function response(status, headers, body)
  if status >= 500 then server_errors = server_errors + 1
  elseif status >= 400 then client_errors = client_errors + 1
  elseif status >= 200 and status < 300 then ok = ok + 1
  else other = other + 1 end
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local totals = {ok = 0, client_errors = 0, server_errors = 0, other = 0}
  for _, t in ipairs(threads) do
    for key, _ in pairs(totals) do totals[key] = totals[key] + t:get(key) end
  end
  io.write(string.format("STATUS ok=%d client_errors=%d server_errors=%d other=%d\n",
    totals.ok, totals.client_errors, totals.server_errors, totals.other))
end
