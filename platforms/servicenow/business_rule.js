/*
 * Escalator: send incident changes to Escalator (a ServiceNow business rule).
 *
 * ServiceNow has no built-in webhook, so this rule is ours. Install it as README.md (next to
 * this file) explains:
 *
 *   Table: Incident [incident]  Active: yes  Advanced: yes
 *   When: after  Order: 10000  Insert: yes  Update: yes  Delete: no  Query: no
 *   Script: this whole file
 *
 * Why "after" and not "async": an async rule runs later, in a worker that reloads the record
 * from the database. By then `previous` is null, field.changes() says nothing, and the
 * record may already include later updates. An after rule sees exactly this insert or
 * update, builds the payload inside the transaction, and hands the HTTP call to
 * RESTMessageV2.executeAsync(). The user's save never waits for Escalator.
 *
 * What it sends: POST <x_escalator.url>, a JSON body (see buildPayload), and the headers
 *   X-Escalator-Timestamp: Unix epoch seconds, e.g. 1793610000
 *   X-Escalator-Signature: base64(HMAC-SHA256(key = the secret's bytes, timestamp + "." + body))
 * Every non-ASCII character in the body is escaped as \uXXXX, so the signed bytes do not
 * depend on any character encoding.
 *
 * System properties (System Properties [sys_properties]):
 *   x_escalator.url              Escalator's endpoint, e.g. https://escalator.example.com/webhooks/servicenow
 *   x_escalator.secret           shared secret, type password2; the same value as webhook_secret in Escalator
 *   x_escalator.user             optional: basic auth user for the call (Escalator's inbound_user)
 *   x_escalator.password         optional: its password, type password2 (Escalator's inbound_password)
 *   x_escalator.extra_fields     optional: comma-separated incident fields to send, dot-walking allowed,
 *                                e.g. "category,u_revenue_impact,company.u_tier"
 *   x_escalator.caller_fields    optional: where the requester's region, tier and language come from,
 *                                as name=path pairs on the caller's sys_user record. Default:
 *                                "region=location.country,language=preferred_language"
 *   x_escalator.timeout_seconds  optional: HTTP timeout, default 10
 *   x_escalator.enabled          optional: "false" stops sending
 *
 * ES5 only: ServiceNow runs server scripts on Rhino. So: var and function only, plain for
 * loops, no arrow functions, no template strings, no String.prototype.trim.
 */
(function executeRule(current, previous /* empty on insert */) {
    var PREFIX = 'x_escalator.';
    // Fields whose changes are reported; the extra fields are watched too.
    var WATCHED = ['short_description', 'state', 'impact', 'urgency', 'priority',
        'assignment_group', 'assigned_to', 'caller_id'];
    var REQUESTER_ATTRIBUTES = ['region', 'tier', 'language'];
    var DEFAULT_CALLER_FIELDS = 'region=location.country,language=preferred_language';

    if (property('enabled', 'true') === 'false') {
        return;
    }
    var url = property('url', '');
    var secret = property('secret', '');
    if (!url || !secret) {
        gs.warn('Escalator: set the system properties x_escalator.url and x_escalator.secret; ' +
            text(current, 'number') + ' was not sent');
        return;
    }

    try {
        var body = asciiJson(buildPayload());
        var timestamp = String(Math.floor(new GlideDateTime().getNumericValue() / 1000));
        send(body, timestamp, sign(timestamp + '.' + body));
    } catch (e) {
        // Never fail the user's save over a notification: Escalator's reconcile catches up.
        gs.error('Escalator: could not send ' + text(current, 'number') + ': ' + e);
    }

    // The JSON Escalator reads (platforms/servicenow/normalise.py). Values are what the
    // Table API would show: strings, a reference as its sys_id, dates "YYYY-MM-DD HH:MM:SS" UTC.
    function buildPayload() {
        var operation = String(current.operation());
        var extraPaths = list(property('extra_fields', ''));
        var watched = WATCHED.slice();
        for (var i = 0; i < extraPaths.length; i++) {
            if (extraPaths[i].indexOf('.') < 0 && watched.indexOf(extraPaths[i]) < 0) {
                watched.push(extraPaths[i]);
            }
        }
        return {
            payload_version: 1,
            table: String(current.getTableName()),
            operation: operation,
            instance_url: String(gs.getProperty('glide.servlet.uri', '')).replace(/\/+$/, ''),
            sys_id: text(current, 'sys_id'),
            number: text(current, 'number'),
            sys_mod_count: text(current, 'sys_mod_count'),
            sys_created_on: text(current, 'sys_created_on'),
            sys_updated_on: text(current, 'sys_updated_on'),
            sys_updated_by: text(current, 'sys_updated_by'),
            short_description: text(current, 'short_description'),
            state: text(current, 'state'),
            impact: text(current, 'impact'),
            urgency: text(current, 'urgency'),
            priority: text(current, 'priority'),
            assignment_group: text(current, 'assignment_group'),
            assigned_to: text(current, 'assigned_to'),
            caller_id: text(current, 'caller_id'),
            caller: callerDetails(),
            extra_fields: extraFields(extraPaths),
            changes: changedFields(operation, watched),
            comment: newComment(),
            // Only whether an agent added a work note: its text stays in ServiceNow.
            work_note_added: isTrue(current.getElement('work_notes').changes()),
            tags: tagNames()
        };
    }

    // On an insert, every watched field that has a value (previous null); on an update, the
    // watched fields this update changed, with their values before and after.
    function changedFields(operation, fields) {
        var changes = [];
        for (var i = 0; i < fields.length; i++) {
            var name = fields[i];
            if (!current.isValidField(name)) {
                continue;
            }
            if (operation === 'insert') {
                if (text(current, name) !== '') {
                    changes.push({field: name, previous: null, current: text(current, name)});
                }
            } else if (isTrue(current.getElement(name).changes())) {
                changes.push({
                    field: name,
                    previous: previous ? text(previous, name) : null,
                    current: text(current, name)
                });
            }
        }
        return changes;
    }

    // The caller's identity and requester attributes. Journal entries name their author by
    // user_name, so user_name is what tells Escalator a comment is the caller's own.
    function callerDetails() {
        var callerId = text(current, 'caller_id');
        if (!callerId) {
            return null;
        }
        var user = new GlideRecord('sys_user');
        if (!user.get(callerId)) {
            return null;
        }
        var details = {
            user_name: text(user, 'user_name'),
            name: text(user, 'name'),
            email: text(user, 'email'),
            region: '',
            tier: '',
            language: ''
        };
        var pairs = list(property('caller_fields', DEFAULT_CALLER_FIELDS));
        for (var i = 0; i < pairs.length; i++) {
            var at = pairs[i].indexOf('=');
            var name = at > 0 ? trim(pairs[i].substring(0, at)) : '';
            if (REQUESTER_ATTRIBUTES.indexOf(name) < 0) {
                gs.warn('Escalator: x_escalator.caller_fields entry "' + pairs[i] +
                    '" is not region=, tier= or language=<field>');
                continue;
            }
            var found = walk(user, trim(pairs[i].substring(at + 1)));
            details[name] = found === null ? '' : found;
        }
        return details;
    }

    function extraFields(paths) {
        var values = {};
        for (var i = 0; i < paths.length; i++) {
            var found = walk(current, paths[i]);
            if (found === null) {
                gs.warn('Escalator: x_escalator.extra_fields names "' + paths[i] +
                    '", which ' + current.getTableName() + ' does not have');
                continue;
            }
            values[paths[i]] = found;
        }
        return values;
    }

    // The newest "Additional comments" entry, when this insert or update added one.
    function newComment() {
        if (!isTrue(current.getElement('comments').changes())) {
            return null;
        }
        var entry = new GlideRecord('sys_journal_field');
        entry.addQuery('name', current.getTableName());
        entry.addQuery('element_id', current.getUniqueValue());
        entry.addQuery('element', 'comments');
        entry.orderByDesc('sys_created_on');
        entry.setLimit(1);
        entry.query();
        if (entry.next()) {
            return {
                sys_id: text(entry, 'sys_id'),
                text: text(entry, 'value'),
                author: text(entry, 'sys_created_by'),
                created: text(entry, 'sys_created_on')
            };
        }
        // Not in the journal table yet: the entry as the record holds it, without its header line.
        var latest = String(current.getElement('comments').getJournalEntry(1));
        return {
            sys_id: '',
            text: latest.substring(latest.indexOf('\n') + 1),
            author: text(current, 'sys_updated_by'),
            created: text(current, 'sys_updated_on')
        };
    }

    // Names of the tags (label_entry) on this incident that everyone can see. A private tag
    // is one person's bookmark, not something a policy should act on.
    function tagNames() {
        var names = [];
        var entry = new GlideRecord('label_entry');
        entry.addQuery('table', current.getTableName());
        entry.addQuery('table_key', current.getUniqueValue());
        entry.query();
        while (entry.next()) {
            var label = entry.getElement('label').getRefRecord();
            if (label.isValidRecord() && text(label, 'viewable_by') === 'everyone') {
                names.push(text(label, 'name'));
            }
        }
        return names.sort();
    }

    function sign(data) {
        // generateMac wants the key base64-encoded; it decodes it back to the secret's bytes.
        // CertificateEncryption is the scoped name, GlideCertificateEncryption the global one.
        var mac = typeof CertificateEncryption !== 'undefined' ?
            new CertificateEncryption() : new GlideCertificateEncryption();
        return String(mac.generateMac(gs.base64Encode(secret), 'HmacSHA256', data));
    }

    function send(body, timestamp, signature) {
        var request = new sn_ws.RESTMessageV2();
        request.setEndpoint(url);
        request.setHttpMethod('post');
        request.setRequestHeader('Content-Type', 'application/json');
        request.setRequestHeader('Accept', 'application/json');
        request.setRequestHeader('X-Escalator-Timestamp', timestamp);
        request.setRequestHeader('X-Escalator-Signature', signature);
        var user = property('user', '');
        if (user) {
            request.setBasicAuth(user, property('password', ''));
        }
        request.setHttpTimeout(1000 * (parseInt(property('timeout_seconds', '10'), 10) || 10));
        request.setRequestBody(body);
        request.executeAsync();
    }

    // A value as a string: '' for empty (getValue gives null), a reference as its sys_id.
    function text(record, name) {
        var value = record.getValue(name);
        return value === null || value === undefined ? '' : String(value);
    }

    // The value at a dot-walked path such as "location.country"; null when a name is not a field.
    function walk(record, path) {
        var names = path.split('.');
        var at = record;
        for (var i = 0; i < names.length - 1; i++) {
            if (!at.isValidField(names[i])) {
                return null;
            }
            var next = at.getElement(names[i]).getRefRecord();
            if (!next || !next.isValidRecord()) {
                return '';  // an empty reference: the field exists, the value is empty
            }
            at = next;
        }
        var last = names[names.length - 1];
        return at.isValidField(last) ? text(at, last) : null;
    }

    function property(name, fallback) {
        var value = gs.getProperty(PREFIX + name, fallback);
        return value === null || value === undefined ? fallback : trim(String(value));
    }

    function list(value) {
        var items = [];
        var parts = value.split(',');
        for (var i = 0; i < parts.length; i++) {
            if (trim(parts[i]) !== '') {
                items.push(trim(parts[i]));
            }
        }
        return items;
    }

    function trim(value) {
        return value.replace(/^\s+|\s+$/g, '');
    }

    // Java and JavaScript booleans alike (a Java Boolean object is always truthy in Rhino).
    function isTrue(value) {
        return String(value) === 'true';
    }

    function asciiJson(value) {
        return JSON.stringify(value).replace(/[\u007f-\uffff]/g, function (c) {
            return '\\u' + ('000' + c.charCodeAt(0).toString(16)).slice(-4);
        });
    }
})(current, previous);
