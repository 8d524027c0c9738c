-- hello.lua: an adonode Lua plugin to copy from.
--
-- Enable it in chain.yaml:
--
--   plugins:
--     - name: hello
--       path: examples/plugins/lua/hello.lua    # or just `hello` if it is on the search path
--       limits: {memory: 8MiB, instructions: 1000000}
--       config:
--         greeting: "good morning"
--         every: 30s
--
-- What it does:
--   * counts the greetings it has sent in its own key-value store (survives restarts);
--   * publishes `hello.greeting` every `every`, with a JSON body;
--   * answers `hello.ping` messages on the bus with `hello.pong`;
--   * serves the RPC method `hello_greet` ({"name": "ann"} -> {"text": "...", "count": n}).
--
-- The script runs in a sandbox (no io, os, package, debug; see docs/plugin-guide-lua.md).
-- Its top level runs once when the node loads it: declare things there, but do the work in
-- init/start, where the whole `ado` API is available.

local greeting -- set in init from the config
local count = 0
local timer -- id of the periodic timer

-- Read the counter from the store ("kv" is the plugin's own database).
local function load_count()
  return tonumber(ado.kv.get("count") or "0")
end

local function greet(name)
  count = count + 1
  ado.kv.put("count", count) -- numbers are stored as text
  return string.format("%s, %s! (#%d)", greeting, name, count)
end

return {
  name = "hello",
  version = "1.0.0",
  description = "greets the bus and RPC clients",
  -- requires = {"other_plugin"},    -- plugins that must start before this one

  -- The plugin's YAML `config` block. The node validates it before anything starts and
  -- reports errors as chain.yaml:LINE:COLUMN: plugins.N.config.KEY: message.
  schema = {
    greeting = {type = "string", default = "hello", help = "what to say"},
    every = {type = "duration", default = "10s", min = "100ms", max = "1d",
             help = "how often to greet the bus"},
    style = {type = "enum", choices = {"plain", "json"}, default = "json"},
    quiet = {type = "bool", default = false},
  },

  -- Called once, with the validated config (defaults filled in; durations in ms, sizes in
  -- bytes). Raising an error here makes the node refuse to start (unless the plugin is
  -- marked optional).
  init = function(config)
    greeting = config.greeting
    count = load_count()
    ado.info(string.format("hello %s on node %s (%s), %d greetings so far", ado.plugin,
                           ado.node.name, ado.node.layer, count))
  end,

  -- Start serving: subscribe, register RPC methods, start timers.
  start = function()
    ado.subscribe("hello.ping", function(topic, data)
      -- data is the published bytes (a string); decode it if it is JSON.
      ado.publish("hello.pong", {to = data, text = greet(data)}) -- tables go out as JSON
    end)

    timer = ado.every(ado.config.every, function()
      if ado.config.quiet then return end
      local text = greet("everyone")
      if ado.config.style == "json" then
        ado.publish("hello.greeting", {text = text, at = ado.wall_ms()})
      else
        ado.publish("hello.greeting", text)
      end
    end)

    -- Clients call it as {"method": "hello_greet", "params": {"name": "ann"}}. The table
    -- returned is the JSON result. Any error raised answers code -32000 with its message and
    -- counts as a failure of the plugin; a table error {code = ..., message = ..., data = ...}
    -- is the client's fault: it is answered as given and not counted.
    ado.rpc("hello_greet", "reader", "greet someone by name", function(params)
      if type(params) ~= "table" or type(params.name) ~= "string" then
        error({code = -32602, message = "params.name (a string) is required"})
      end
      return {text = greet(params.name), count = count}
    end)
  end,

  -- Called when the node stops or before a reload swaps in a new version. Subscriptions,
  -- timers and RPC methods are dropped by the node afterwards; cancel here only what you
  -- must stop early.
  stop = function()
    if timer then ado.cancel(timer) end
    ado.info("hello stops after " .. count .. " greetings")
  end,
}
