-- POST /passwordless/start for the existing users in turn (each start sends an email)
package.path = os.getenv("BENCH_WRK_DIR") .. "/?.lua;" .. package.path
local common = require("common")
local client_id = os.getenv("BENCH_CLIENT_ID")
local users = tonumber(os.getenv("BENCH_USERS"))
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local counter = 0

request = function()
  counter = counter + 1
  local email = string.format("user%d@bench.example", (offset + counter) % users)
  local body = string.format(
    '{"client_id":"%s","connection":"email","email":"%s","send":"code"}', client_id, email)
  return wrk.format("POST", "/passwordless/start", {["Content-Type"] = "application/json"}, body)
end

done = common.done
