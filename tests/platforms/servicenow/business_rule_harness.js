// Runs platforms/servicenow/business_rule.js outside ServiceNow, for the tests.
//
// Reads one scenario (JSON) on stdin, runs the script in a fresh context with small fakes
// of the Glide APIs it uses, and prints what it did (JSON) on stdout:
//   {"requests": [{method, endpoint, headers, body, basic_auth, timeout_ms, async}], "logs": [...]}
//
// The fakes follow ServiceNow's documented behaviour where it matters for Escalator:
// - CertificateEncryption.generateMac(key, "HmacSHA256", data): `key` must be base64; it is
//   decoded to the HMAC key bytes, and the MAC comes back base64-encoded.
// - GlideRecord.getValue(name) is null for an empty field; references hold a sys_id.
// - GlideElement.changes() is true for the fields the scenario says this operation changed.
//
// Scenario: {script, now_ms, operation, table, properties, current, previous, changed,
//            records: {table: [row, ...]}, references: {"table.field": "table"}, fields: {table: [...]}}

'use strict';

const crypto = require('crypto');
const fs = require('fs');
const vm = require('vm');

const scenario = JSON.parse(fs.readFileSync(0, 'utf8'));
const logs = [];
const requests = [];
const records = scenario.records || {};
const references = scenario.references || {};
const schema = scenario.fields || {};

function validField(table, values, name) {
  return Object.prototype.hasOwnProperty.call(values, name) || (schema[table] || []).includes(name);
}

class FakeRecord {
  constructor(table, values, { changed = [], operation = null, valid = true } = {}) {
    this.table = table;
    this.values = values || {};
    this.changed = new Set(changed);
    this.op = operation;
    this.valid = valid;
  }
  getTableName() { return this.table; }
  getUniqueValue() { return this.values.sys_id; }
  isValidRecord() { return this.valid; }
  isValidField(name) { return validField(this.table, this.values, name); }
  operation() { return this.op; }
  getValue(name) {
    const value = this.values[name];
    return value === undefined || value === null || value === '' ? null : String(value);
  }
  getElement(name) {
    const record = this;
    return {
      changes() { return record.changed.has(name); },
      getRefRecord() { return refRecord(`${record.table}.${name}`, record.getValue(name)); },
      getJournalEntry() { return ''; },
      toString() { return record.getValue(name) || ''; },
    };
  }
}

function refRecord(key, sysId) {
  const table = references[key];
  if (!table) throw new Error(`harness: no reference table for ${key}`);
  const row = (records[table] || []).find((r) => r.sys_id === sysId);
  return row ? new FakeRecord(table, row) : new FakeRecord(table, {}, { valid: false });
}

// `new GlideRecord(table)`: get(sys_id), or addQuery/orderByDesc/setLimit/query/next.
class GlideRecord extends FakeRecord {
  constructor(table) {
    super(table, {}, { valid: false });
    this.filters = [];
    this.order = null;
    this.limit = Infinity;
    this.rows = [];
    this.at = -1;
  }
  get(sysId) { return this.load((records[this.table] || []).filter((r) => r.sys_id === sysId), true); }
  addQuery(name, value) { this.filters.push([name, String(value)]); }
  orderByDesc(name) { this.order = name; }
  setLimit(n) { this.limit = n; }
  query() {
    let rows = (records[this.table] || []).filter((r) => this.filters.every(([n, v]) => String(r[n]) === v));
    if (this.order) rows = rows.slice().sort((a, b) => (a[this.order] < b[this.order] ? 1 : -1));
    this.load(rows.slice(0, this.limit), false);
  }
  load(rows, first) {
    this.rows = rows;
    this.at = -1;
    return first ? this.next() : undefined;
  }
  next() {
    this.at += 1;
    this.valid = this.at < this.rows.length;
    this.values = this.valid ? this.rows[this.at] : {};
    return this.valid;
  }
}

class RESTMessageV2 {
  constructor() { this.request = { headers: {}, basic_auth: null, timeout_ms: null, async: null }; }
  setEndpoint(url) { this.request.endpoint = url; }
  setHttpMethod(method) { this.request.method = method.toUpperCase(); }
  setRequestHeader(name, value) { this.request.headers[name] = String(value); }
  setBasicAuth(user, password) { this.request.basic_auth = [user, password]; }
  setHttpTimeout(ms) { this.request.timeout_ms = ms; }
  setRequestBody(body) { this.request.body = String(body); }
  execute() { this.request.async = false; requests.push(this.request); return {}; }
  executeAsync() { this.request.async = true; requests.push(this.request); return {}; }
}

class CertificateEncryption {
  generateMac(key, algorithm, data) {
    if (algorithm !== 'HmacSHA256') throw new Error(`harness: unexpected algorithm ${algorithm}`);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(key)) throw new Error('harness: generateMac key is not base64');
    const hmac = crypto.createHmac('sha256', Buffer.from(key, 'base64'));
    return hmac.update(Buffer.from(data, 'utf8')).digest('base64');
  }
}

const properties = scenario.properties || {};
const gs = {
  getProperty(name, fallback) {
    return Object.prototype.hasOwnProperty.call(properties, name) ? properties[name] : fallback;
  },
  base64Encode(value) { return Buffer.from(String(value), 'utf8').toString('base64'); },
  info(message) { logs.push(['info', String(message)]); },
  warn(message) { logs.push(['warn', String(message)]); },
  error(message) { logs.push(['error', String(message)]); },
};

const table = scenario.table || 'incident';
const current = new FakeRecord(table, scenario.current, {
  changed: scenario.changed || [],
  operation: scenario.operation,
});
const previous = scenario.previous ? new FakeRecord(table, scenario.previous) : null;

const context = vm.createContext({
  current,
  previous,
  gs,
  GlideRecord,
  GlideDateTime: class { getNumericValue() { return scenario.now_ms; } },
  CertificateEncryption,
  sn_ws: { RESTMessageV2 },
});
vm.runInContext(fs.readFileSync(scenario.script, 'utf8'), context, { filename: 'business_rule.js' });
process.stdout.write(JSON.stringify({ requests, logs }));
