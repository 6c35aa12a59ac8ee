// Driven by tests/e2e/test_node_auth0.py: node-auth0's ManagementClient against nopass.
const { ManagementClient } = require("auth0");
const out = {};
const all = async (page) => { const items = []; for await (const x of page) items.push(x); return items; };
(async () => {
  const m = new ManagementClient({
    domain: process.env.DOMAIN, clientId: process.env.CLIENT_ID, clientSecret: process.env.SECRET,
  });
  const apis = await all(await m.resourceServers.list());
  out.first_api = { name: apis[0].name, is_system: apis[0].is_system, identifier: apis[0].identifier };
  const api = await m.resourceServers.create({
    identifier: "https://orders.acme.example/", name: "Orders",
    scopes: [{ value: "read:orders", description: "Read orders" }],
  });
  out.api_id = api.id;
  out.api_renamed = (await m.resourceServers.update(api.id, { name: "Orders API" })).name;

  const worker = await m.clients.create({ name: "Node Worker", app_type: "non_interactive" });
  out.has_secret = typeof worker.client_secret === "string";
  out.client_id = worker.client_id;
  out.updated = (await m.clients.update(worker.client_id, { description: "from node" })).description;
  out.client_names = (await all(await m.clients.list({ per_page: 2 }))).map((c) => c.name);
  out.rotated = (await m.clients.rotateSecret(worker.client_id)).client_secret !== worker.client_secret;

  const grant = await m.clientGrants.create({
    client_id: worker.client_id, audience: "https://orders.acme.example/", scope: ["read:orders"],
  });
  out.grant_id = grant.id;
  out.grant_scope = (await m.clientGrants.update(grant.id, { scope: [] })).scope;
  out.grants = (await all(await m.clientGrants.list({ take: 1 }))).map((g) => g.id);

  out.settings = await m.tenants.settings.update({ friendly_name: "Acme", support_url: "https://acme.example/help" });
  out.settings_read = await m.tenants.settings.get();

  const user = await m.users.create({ connection: "email", email: "ada@acme.example" });
  out.user_id = user.user_id;
  out.users = (await all(await m.users.list())).map((u) => u.email);
  await m.users.delete(user.user_id);

  // connections: the checkpoint pager, create, options replaced whole, enabled clients
  out.connection_names = (await all(await m.connections.list({ take: 1 }))).map((c) => c.name);
  const texts = await m.connections.create({
    name: "node-sms", strategy: "sms", enabled_clients: [worker.client_id],
    options: { provider: "outbox", totp: { length: 8, time_step: 300 }, name: "node-sms" },
  });
  out.connection_id = texts.id;
  const changed = await m.connections.update(texts.id, { options: { provider: "outbox" } });
  out.connection_options = changed.options;
  await m.connections.clients.update(texts.id, [
    { client_id: worker.client_id, status: false }, { client_id: process.env.CLIENT_ID, status: true },
  ]);
  out.connection_clients = (await all(await m.connections.clients.get(texts.id, { take: 1 }))).map((c) => c.client_id);
  out.connection_read = (await m.connections.get(texts.id)).enabled_clients;
  await m.connections.delete(texts.id);
  try { await m.connections.get(texts.id); out.connection_deleted = false; }
  catch (err) { out.connection_deleted = err.statusCode; }

  await m.clientGrants.delete(grant.id);
  await m.resourceServers.delete(api.id);
  await m.clients.delete(worker.client_id);
  try { await m.clients.get(worker.client_id); out.deleted = false; }
  catch (err) { out.deleted = err.statusCode; out.deleted_code = err.body.errorCode; }
  try { await m.resourceServers.delete(apis[0].id); out.system_deleted = true; }
  catch (err) { out.system_deleted = err.statusCode; }
  console.log(JSON.stringify(out));
})().catch((err) => { console.error(err && (err.stack || err.message || err)); process.exit(1); });
