-- A Lua subscriber for bench_bus: counts the events it gets.
local n = 0
return {
  name = "bench_sub",
  version = "1.0.0",
  start = function()
    ado.subscribe("bench.lua", function(topic, data) n = n + 1 end)
    ado.rpc("bench_count", "reader", "events seen", function() return n end)
  end,
}
