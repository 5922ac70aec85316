/* The BPMN workflow editor: bpmn-js with a palette limited to what the engine runs and a small
 * properties form for our attributes (namespace phq). The server reads the saved XML with
 * workflows.bpmn and validates it with the engine's compiler; errors come back with the element id
 * and are marked on the diagram. No inline scripts (CSP): configuration arrives in a JSON element. */
(function () {
  'use strict';

  var PHQ_MODDLE = window.PHQ_MODDLE;  // workflows/static/workflows/phq-moddle.js

  var configElement = document.getElementById('editor-config');
  if (!configElement) { return; }
  var config = JSON.parse(configElement.textContent);
  var readOnly = config.mode !== 'edit';
  // Texts come from the djangojs catalogue (base.html loads /jsi18n/ first); fmt fills %(name)s placeholders.
  function fmt(text, values) { return interpolate(text, values, true); }
  function roleLabel(role) { return (config.role_labels || {})[role] || role; }

  // ---- palette, context pad and replace menu limited to what the engine runs ---------------
  function RunnableOnly(palette, contextPad, popupMenu, create, elementFactory, autoPlace, translate) {
    function shapeAction(attrs, title, className, group) {
      function start(event) { create.start(event, elementFactory.createShape(attrs)); }
      return { group: group, className: className, title: title, action: { dragstart: start, click: start } };
    }
    function appendAction(attrs, title, className) {
      return {
        group: 'model', className: className, title: title,
        action: { click: function (event, element) { autoPlace.append(element, elementFactory.createShape(attrs)); } }
      };
    }
    var TIMER = { type: 'bpmn:IntermediateCatchEvent', eventDefinitionType: 'bpmn:TimerEventDefinition' };
    var MESSAGE = { type: 'bpmn:IntermediateCatchEvent', eventDefinitionType: 'bpmn:MessageEventDefinition' };
    palette.registerProvider(500, {
      getPaletteEntries: function () {
        return function (entries) {
          var keep = {};
          ['hand-tool', 'lasso-tool', 'space-tool', 'global-connect-tool', 'tool-separator',
            'create.start-event', 'create.end-event', 'create.exclusive-gateway'].forEach(function (id) {
            if (entries[id]) { keep[id] = entries[id]; }
          });
          keep['create.user-task'] = shapeAction({ type: 'bpmn:UserTask' }, gettext('Create user task'), 'bpmn-icon-user-task', 'activity');
          keep['create.service-task'] = shapeAction({ type: 'bpmn:ServiceTask' }, gettext('Create system task'), 'bpmn-icon-service-task', 'activity');
          keep['create.call-activity'] = shapeAction({ type: 'bpmn:CallActivity' }, gettext('Create call of another workflow'), 'bpmn-icon-call-activity', 'activity');
          keep['create.timer-catch'] = shapeAction(TIMER, gettext('Create timer wait'), 'bpmn-icon-intermediate-event-catch-timer', 'event');
          keep['create.message-catch'] = shapeAction(MESSAGE, gettext('Create message wait'), 'bpmn-icon-intermediate-event-catch-message', 'event');
          keep['create.event-gateway'] = shapeAction({ type: 'bpmn:EventBasedGateway' }, gettext('Create wait with timeout (event-based gateway)'), 'bpmn-icon-gateway-eventbased', 'gateway');
          return keep;
        };
      }
    });
    contextPad.registerProvider(500, {
      getContextPadEntries: function (element) {
        return function (entries) {
          var keep = {};
          ['append.end-event', 'append.gateway', 'delete', 'connect', 'replace',
            'append.timer-intermediate-event', 'append.message-intermediate-event'].forEach(function (id) {
            if (entries[id]) { keep[id] = entries[id]; }
          });
          var type = element.type;
          if (type !== 'bpmn:EndEvent' && type !== 'bpmn:SequenceFlow' && type !== 'label' && entries['append.end-event']) {
            keep['append.user-task'] = appendAction({ type: 'bpmn:UserTask' }, gettext('Append user task'), 'bpmn-icon-user-task');
            keep['append.service-task'] = appendAction({ type: 'bpmn:ServiceTask' }, gettext('Append system task'), 'bpmn-icon-service-task');
            keep['append.timer-catch'] = appendAction(TIMER, gettext('Append timer wait'), 'bpmn-icon-intermediate-event-catch-timer');
          }
          return keep;
        };
      }
    });
    var replaceable = /^replace-with-(none-start|none-end|user-task|service-task|call-activity|exclusive-gateway|event-based-gateway|message-intermediate-catch|timer-intermediate-catch|sequence-flow|default-flow|conditional-flow|timer-non-interrupting-boundary|timer-boundary)/;
    popupMenu.registerProvider('bpmn-replace', 500, {
      getPopupMenuEntries: function () {
        return function (entries) {
          var keep = {};
          Object.keys(entries).forEach(function (id) { if (replaceable.test(id)) { keep[id] = entries[id]; } });
          return keep;
        };
      },
      getPopupMenuHeaderEntries: function () { return function () { return {}; }; }
    });
    if (popupMenu._eventBus) {
      ['bpmn-append', 'bpmn-create'].forEach(function (menu) {
        popupMenu.registerProvider(menu, 500, {
          getPopupMenuEntries: function () { return function () { return {}; }; }
        });
      });
    }
  }
  RunnableOnly.$inject = ['palette', 'contextPad', 'popupMenu', 'create', 'elementFactory', 'autoPlace', 'translate'];

  var options = { container: '#canvas', moddleExtensions: { phq: PHQ_MODDLE } };
  if (!readOnly) {
    options.additionalModules = [{ __init__: ['runnableOnly'], runnableOnly: ['type', RunnableOnly] }];
  }
  var modeler = new window.BpmnJS(options);
  window.phqModeler = modeler;  // for the browser test and the console

  var statusBox = document.getElementById('editor-status');
  var problemList = document.getElementById('editor-problems');
  var form = document.getElementById('properties');

  function setStatus(kind, text) {
    statusBox.className = 'alert alert-' + kind + ' py-2 mb-2';
    statusBox.textContent = text;
    statusBox.hidden = false;
  }

  // ---- helpers on the BPMN model --------------------------------------------------------------
  function svc(name) { return modeler.get(name); }
  function bo(element) { return element.businessObject; }
  function is(element, type) { return bo(element) && bo(element).$instanceOf(type); }
  function definitions() { return modeler.getDefinitions(); }
  function processBo() {
    var root = svc('canvas').getRootElement();
    var r = bo(root);
    if (r && r.$instanceOf('bpmn:Collaboration')) { return r.participants[0].processRef; }
    return r;
  }
  function update(element, props) { svc('modeling').updateProperties(element, props); }
  function documentation(obj) { return (obj.documentation && obj.documentation[0] && obj.documentation[0].text) || ''; }
  function setDocumentation(element, text) {
    var docs = text ? [svc('moddle').create('bpmn:Documentation', { text: text })] : [];
    update(element, { documentation: docs });
  }
  function extensionValues(obj, type) {
    var ext = obj.extensionElements;
    return ext && ext.values ? ext.values.filter(function (v) { return v.$instanceOf(type); }) : [];
  }
  function setExtensionValues(element, type, values) {
    var moddle = svc('moddle');
    var obj = bo(element);
    var ext = obj.extensionElements || moddle.create('bpmn:ExtensionElements', { values: [] });
    var others = (ext.values || []).filter(function (v) { return !v.$instanceOf(type); });
    values.forEach(function (v) { v.$parent = ext; });
    ext.values = others.concat(values);
    ext.$parent = obj;
    update(element, { extensionElements: ext });
  }
  function formal(text) { return svc('moddle').create('bpmn:FormalExpression', { body: text }); }
  function eventDefinition(element, type) {
    var defs = bo(element).eventDefinitions || [];
    return defs.filter(function (d) { return d.$instanceOf(type); })[0];
  }
  // The bpmn:Message of this name (a business event or a message a wait catches), added to the file if new.
  function messageNamed(name) {
    var defs = definitions();
    var existing = (defs.rootElements || []).filter(function (e) { return e.$instanceOf('bpmn:Message') && e.name === name; })[0];
    if (!existing) {
      existing = svc('moddle').create('bpmn:Message', { id: 'Message_' + name.replace(/[^A-Za-z0-9_.-]/g, '_'), name: name });
      existing.$parent = defs;
      defs.rootElements.push(existing);
    }
    return existing;
  }
  function timeoutBoundary(element) {
    return (element.attachers || []).filter(function (a) {
      return eventDefinition(a, 'bpmn:TimerEventDefinition') && (a.outgoing || []).length && bo(a).cancelActivity !== false;
    })[0];
  }
  // "Close if not done after … then continue at …": an interrupting timer on the task with one flow.
  function setTimeout_(element, after, targetId) {
    var modeling = svc('modeling');
    var boundary = timeoutBoundary(element);
    var target = targetId ? svc('elementRegistry').get(targetId) : null;
    if (!after || !target) {
      if (boundary && !after) { modeling.removeElements([boundary]); }
      return;
    }
    if (!boundary) {
      var shape = svc('elementFactory').createShape({ type: 'bpmn:BoundaryEvent', eventDefinitionType: 'bpmn:TimerEventDefinition' });
      boundary = modeling.createShape(shape, { x: element.x + 30, y: element.y + element.height }, element, { attach: true });
      modeling.updateProperties(boundary, { name: 'Not done after ' + after });
    }
    modeling.updateModdleProperties(boundary, eventDefinition(boundary, 'bpmn:TimerEventDefinition'), { timeDuration: formal(after) });
    var flow = (boundary.outgoing || [])[0];
    if (!flow || flow.target !== target) {
      if (flow) { modeling.removeElements([flow]); }
      modeling.connect(boundary, target, { type: 'bpmn:SequenceFlow' });
    }
  }
  function dueBoundary(element) {
    return (element.attachers || []).filter(function (a) {
      return eventDefinition(a, 'bpmn:TimerEventDefinition') && !bo(a).get('phq:escalateTo') && !(a.outgoing || []).length;
    })[0];
  }

  // ---- the properties form ------------------------------------------------------------------
  var fieldCounter = 0;
  function field(labelText, control, help) {
    var wrap = document.createElement('div');
    wrap.className = 'mb-2';
    var id = 'prop-' + (++fieldCounter);
    var label = document.createElement('label');
    label.className = 'form-label small fw-semibold mb-0';
    label.htmlFor = id;
    label.textContent = labelText;
    control.id = id;
    wrap.appendChild(label);
    wrap.appendChild(control);
    if (help) {
      var small = document.createElement('div');
      small.className = 'form-text';
      small.textContent = help;
      wrap.appendChild(small);
    }
    form.appendChild(wrap);
    return control;
  }
  function input(value, onChange, attrs) {
    var el = document.createElement(attrs && attrs.multiline ? 'textarea' : 'input');
    el.className = 'form-control form-control-sm';
    if (attrs && attrs.multiline) { el.rows = attrs.rows || 3; }
    el.value = value || '';
    if (attrs && attrs.placeholder) { el.placeholder = attrs.placeholder; }
    if (attrs && attrs.name) { el.name = attrs.name; }
    el.readOnly = readOnly;
    el.addEventListener('change', function () { onChange(el.value.trim()); });
    return el;
  }
  function select(value, choices, onChange, name) {
    var el = document.createElement('select');
    el.className = 'form-select form-select-sm';
    el.name = name || '';
    el.disabled = readOnly;
    var blank = document.createElement('option');
    blank.value = '';
    blank.textContent = gettext('— choose —');
    el.appendChild(blank);
    choices.forEach(function (choice) {
      var option = document.createElement('option');
      option.value = choice.value;
      option.textContent = choice.label;
      el.appendChild(option);
    });
    if (value && !choices.some(function (c) { return c.value === value; })) {
      var unknown = document.createElement('option');
      unknown.value = value;
      unknown.textContent = fmt(gettext('%(value)s (unknown)'), { value: value });
      el.appendChild(unknown);
    }
    el.value = value || '';
    el.addEventListener('change', function () { onChange(el.value); });
    return el;
  }
  function heading(text) {
    var h = document.createElement('h2');
    h.className = 'h6 border-bottom pb-1';
    h.textContent = text;
    form.appendChild(h);
  }
  function note(text) {
    var p = document.createElement('p');
    p.className = 'small text-body-secondary';
    p.textContent = text;
    form.appendChild(p);
  }

  function renderForm(element) {
    form.textContent = '';
    if (element && element.labelTarget) { element = element.labelTarget; }
    var root = svc('canvas').getRootElement();
    if (!element || element === root) { return renderProcess(); }
    var obj = bo(element);
    heading(labelOf(element) + ' · ' + (obj.name || obj.id));
    idField(element);
    if (!is(element, 'bpmn:SequenceFlow')) {
      field(gettext('Name'), input(obj.name, function (v) { update(element, { name: v || undefined }); }, { name: 'name' }));
    }
    if (is(element, 'bpmn:UserTask')) { return renderUserTask(element); }
    if (is(element, 'bpmn:ServiceTask')) { return renderServiceTask(element); }
    if (is(element, 'bpmn:SequenceFlow')) { return renderFlow(element); }
    if (is(element, 'bpmn:StartEvent')) { return renderStart(element); }
    if (is(element, 'bpmn:EndEvent')) {
      field(gettext('Result'), input(obj.get('phq:result'), function (v) { update(element, { 'phq:result': v || undefined }); }, { name: 'result' }),
        gettext('Recorded on the process when it ends here, e.g. approved.'));
      return;
    }
    if (is(element, 'bpmn:CallActivity')) {
      var defs = (config.definitions || []).map(function (k) { return { value: k, label: k }; });
      field(gettext('Workflow to run'), select(obj.calledElement, defs, function (v) { update(element, { calledElement: v || undefined }); }, 'calledElement'));
      return;
    }
    if (is(element, 'bpmn:IntermediateCatchEvent') || is(element, 'bpmn:BoundaryEvent')) { return renderCatch(element); }
    if (isOutcomeGateway(element)) {
      note(fmt(gettext('The outcomes of \u201c%(task)s\u201d: select a flow to name the outcome it stands for.'),
        { task: bo(element.incoming[0].source).name || element.incoming[0].source.id }));
      return;
    }
    if (is(element, 'bpmn:ExclusiveGateway')) {
      note(gettext('Set a condition on each outgoing flow and mark one flow as the default (select the flow).'));
      return;
    }
    if (is(element, 'bpmn:EventBasedGateway')) {
      note(gettext('Waits for whichever comes first: the message or the timer that follow it.'));
    }
  }

  // The element's id (the step id the engine and the history use): unique, an XML name, at most 100 characters.
  var NCNAME = /^[\p{L}_][\p{L}\p{N}_.\-]*$/u;
  function idProblem(element, value) {
    if (!value) { return gettext('Give the element an id.'); }
    if (value.length > 100) { return fmt(gettext('Use at most 100 characters (this id has %(count)s).'), { count: value.length }); }
    if (!NCNAME.test(value)) {
      return gettext('Start with a letter or _, then use letters, digits, _, - or . (no spaces or colons).');
    }
    var other = svc('elementRegistry').get(value);
    var taken = (other && other !== element) || (value !== bo(element).id && (definitions().rootElements || []).some(function (e) { return e.id === value; }));
    if (taken) { return fmt(gettext('Another element has the id \u201c%(id)s\u201d: ids are unique in the diagram.'), { id: value }); }
    return '';
  }
  function idField(element) {
    var feedback = document.createElement('div');
    feedback.className = 'invalid-feedback';
    feedback.id = 'id-feedback';
    var control = input(bo(element).id, function (v) {
      var problem = idProblem(element, v);
      control.classList.toggle('is-invalid', !!problem);
      feedback.textContent = problem;
      if (problem || v === bo(element).id) { return; }
      update(element, { id: v });
      renderForm(element);
    }, { name: 'element-id' });
    control.maxLength = 100;
    control.setAttribute('aria-describedby', feedback.id);
    field(gettext('ID'), control, gettext('Used by the engine and in the history; letters, digits, _, - or ., unique.'));
    control.parentNode.insertBefore(feedback, control.nextSibling);
  }

  function labelOf(element) {
    var map = {
      'bpmn:UserTask': gettext('User task'), 'bpmn:ServiceTask': gettext('System task'), 'bpmn:ExclusiveGateway': gettext('Decision'),
      'bpmn:StartEvent': gettext('Start'), 'bpmn:EndEvent': gettext('End'), 'bpmn:SequenceFlow': gettext('Flow'), 'bpmn:CallActivity': gettext('Call'),
      'bpmn:IntermediateCatchEvent': gettext('Wait'), 'bpmn:BoundaryEvent': gettext('Timer on task'), 'bpmn:EventBasedGateway': gettext('Wait with timeout')
    };
    return map[element.type] || element.type.replace('bpmn:', '');
  }

  function renderProcess() {
    var proc = processBo();
    heading(gettext('Workflow'));
    if (!proc) { return; }
    var rootElement = svc('canvas').getRootElement();
    function updateProc(props) {
      svc('modeling').updateModdleProperties(rootElement, proc, props);
    }
    field(gettext('Name'), input(proc.name, function (v) { updateProc({ name: v }); }, { name: 'process-name' })).maxLength = 200;
    field(gettext('Category'), input(proc.get('phq:category'), function (v) { updateProc({ 'phq:category': v || undefined }); }, { name: 'category' })).maxLength = 100;
    var desc = input(documentation(proc), function (v) {
      updateProc({ documentation: v ? [svc('moddle').create('bpmn:Documentation', { text: v })] : [] });
    }, { multiline: true, name: 'description' });
    field(gettext('Description'), desc);
    note(gettext('Select an element to edit it. Only the elements the engine runs are in the palette.'));
  }

  function renderUserTask(element) {
    var obj = bo(element);
    var roles = (config.roles || []).map(function (r) { return { value: r, label: roleLabel(r) }; });
    field(gettext('Role'), select(obj.get('phq:role'), roles, function (v) { update(element, { 'phq:role': v || undefined }); }, 'role'),
      gettext('Everyone with this role (responsible for the car park, if scoped) sees the task in their basket.'));
    var scope = document.createElement('input');
    scope.type = 'checkbox';
    scope.className = 'form-check-input ms-2';
    scope.name = 'scope';
    scope.checked = obj.get('phq:scope') === 'carpark';
    scope.disabled = readOnly;
    scope.addEventListener('change', function () { update(element, { 'phq:scope': scope.checked ? 'carpark' : undefined }); });
    field(gettext('Only for the car park\u2019s responsible staff'), scope);
    field(gettext('Instructions'), input(documentation(obj), function (v) { setDocumentation(element, v); }, { multiline: true, name: 'instructions' }));
    var boundary = dueBoundary(element);
    var dueValue = obj.get('phq:dueIn') || '';
    if (boundary) {
      var timer = eventDefinition(boundary, 'bpmn:TimerEventDefinition');
      dueValue = (timer.timeDuration && timer.timeDuration.body) || dueValue;
    }
    field(gettext('Due in'), input(dueValue, function (v) {
      var b = dueBoundary(element);
      if (b) {
        if (!v) { svc('modeling').removeElements([b]); return; }
        var t = eventDefinition(b, 'bpmn:TimerEventDefinition');
        svc('modeling').updateModdleProperties(b, t, { timeDuration: formal(v) });
      } else {
        update(element, { 'phq:dueIn': v || undefined });
      }
    }, { placeholder: 'P2D', name: 'due_in' }), gettext('ISO 8601 duration: P2D = two days, PT4H = four hours.'));
    var closing = timeoutBoundary(element);
    var closeAfter = closing ? ((eventDefinition(closing, 'bpmn:TimerEventDefinition').timeDuration || {}).body || '') : '';
    var closeTo = closing ? closing.outgoing[0].target.id : '';
    var targets = svc('elementRegistry').filter(function (e) {
      return e !== element && !e.labelTarget && (is(e, 'bpmn:Task') || is(e, 'bpmn:EndEvent') || is(e, 'bpmn:Gateway') ||
        is(e, 'bpmn:IntermediateCatchEvent') || is(e, 'bpmn:CallActivity'));
    }).map(function (e) { return { value: e.id, label: (bo(e).name || e.id) + ' (' + e.id + ')' }; });
    field(gettext('Close if not done after'), input(closeAfter, function (v) {
      closeAfter = v;
      setTimeout_(element, closeAfter, closeTo);
    }, { placeholder: 'P3D', name: 'close_after' }), gettext('ISO 8601 duration. Empty: the task stays open until someone does it.'));
    field(gettext('…then continue at'), select(closeTo, targets, function (v) {
      closeTo = v;
      setTimeout_(element, closeAfter, closeTo);
    }, 'close_to'), gettext('The open task is cancelled and the process takes this path (an interrupting timer on the task).'));
    var chain = extensionValues(obj, 'phq:Escalation').map(function (e) { return e.after + ' ' + e.to; }).join('\n');
    field(gettext('Escalation chain'), input(chain, function (v) {
      var moddle = svc('moddle');
      var values = v.split('\n').map(function (line) { return line.trim(); }).filter(Boolean).map(function (line) {
        var space = line.indexOf(' ');
        return moddle.create('phq:Escalation', { after: space > 0 ? line.slice(0, space) : 'PT0S', to: space > 0 ? line.slice(space + 1).trim() : line });
      });
      setExtensionValues(element, 'phq:Escalation', values);
    }, { multiline: true, placeholder: 'PT0S Supervisor\nP1D Administrator', name: 'escalation' }),
    gettext('One line per level: how long after the due time, then the role it goes to.'));
    inputsField(element, gettext('Inputs'), 'inputs');
    note(gettext('Name the outcomes on the outgoing flows (select a flow). One unnamed flow means the outcome \u201cdone\u201d.'));
  }

  // The fields a person fills in: a user task's inputs, or the start form of a workflow started by hand.
  function inputsField(element, labelText, name) {
    var obj = bo(element);
    var inputs = extensionValues(obj, 'phq:Input').map(function (i) {
      var parts = [i.name, i.label || '', i.type || 'text', i.required === 'true' ? 'required' : 'optional'];
      if (i.choices && i.choices.length) { parts.push(i.choices.map(function (c) { return c.value; }).join(', ')); }
      return parts.join(' | ');
    }).join('\n');
    field(labelText, input(inputs, function (v) {
      var moddle = svc('moddle');
      var values = v.split('\n').map(function (l) { return l.trim(); }).filter(Boolean).map(function (line) {
        var p = line.split('|').map(function (s) { return s.trim(); });
        var item = moddle.create('phq:Input', {
          name: p[0], label: p[1] || p[0], type: p[2] || 'text', required: p[3] === 'required' ? 'true' : 'false'
        });
        if (p[4]) {
          item.choices = p[4].split(',').map(function (c) { return moddle.create('phq:Choice', { value: c.trim() }); });
          item.choices.forEach(function (c) { c.$parent = item; });
        }
        return item;
      });
      setExtensionValues(element, 'phq:Input', values);
    }, { multiline: true, rows: 4, placeholder: 'note | Note | text | optional\nkind | Kind | choice | required | private, company', name: name }),
    gettext('One line per field: name | label | type (text, number, date, choice, bool, file) | required or optional | choices.'));
  }

  function renderServiceTask(element) {
    var obj = bo(element);
    var tasks = (config.system_tasks || []).map(function (t) { return { value: t.name, label: t.name }; });
    var chosen = obj.get('phq:task');
    var describe = document.createElement('div');
    function showDescription(name) {
      var task = (config.system_tasks || []).filter(function (t) { return t.name === name; })[0];
      describe.textContent = task ? task.description + (task.writes.length ? ' ' + fmt(gettext('Writes: %(fields)s.'), { fields: task.writes.join(', ') }) : '') : '';
    }
    field(gettext('System task'), select(chosen, tasks, function (v) { update(element, { 'phq:task': v || undefined }); showDescription(v); }, 'task'));
    describe.className = 'form-text mb-2';
    form.appendChild(describe);
    showDescription(chosen);
    field(gettext('Attempts'), input(obj.get('phq:retries'), function (v) { update(element, { 'phq:retries': v || undefined }); }, { placeholder: '3', name: 'retries' }));
    field(gettext('Wait between attempts'), input(obj.get('phq:retryBackoff'), function (v) { update(element, { 'phq:retryBackoff': v || undefined }); }, { placeholder: 'PT30S', name: 'backoff' }));
    field(gettext('Time limit per attempt'), input(obj.get('phq:timeout'), function (v) { update(element, { 'phq:timeout': v || undefined }); }, { placeholder: 'PT5M', name: 'timeout' }));
  }

  function renderCatch(element) {
    var message = eventDefinition(element, 'bpmn:MessageEventDefinition');
    var timer = eventDefinition(element, 'bpmn:TimerEventDefinition');
    if (message) {
      var current = message.messageRef ? message.messageRef.name : '';
      field(gettext('Message'), input(current, function (v) {
        if (!v) { return; }
        svc('modeling').updateModdleProperties(element, message, { messageRef: messageNamed(v) });
      }, { placeholder: 'deposit.paid', name: 'message' }), gettext('The process waits here until this message arrives for its business object.'));
    } else if (timer) {
      var duration = timer.timeDuration ? timer.timeDuration.body : '';
      field(gettext('Wait for'), input(duration, function (v) {
        svc('modeling').updateModdleProperties(element, timer, { timeDuration: v ? formal(v) : undefined, timeDate: undefined });
        if (is(element, 'bpmn:IntermediateCatchEvent')) { update(element, { 'phq:untilVariable': undefined }); }
      }, { placeholder: 'P1D', name: 'duration' }), gettext('ISO 8601 duration.'));
      if (is(element, 'bpmn:IntermediateCatchEvent')) {
        field(gettext('…or until the date in variable'), input(bo(element).get('phq:untilVariable'), function (v) {
          update(element, { 'phq:untilVariable': v || undefined });
        }, { placeholder: 'offer_expires_at', name: 'until_variable' }));
      } else if ((element.outgoing || []).length) {
        note(bo(element).cancelActivity === false
          ? gettext('A non-interrupting timer cannot start a path: make it interrupting, or remove its outgoing flow.')
          : gettext('Interrupting: when this time has passed and the task is not done, its open tasks are cancelled and the process follows this timer\u2019s flow.'));
      } else {
        field(gettext('Escalate to role'), select(bo(element).get('phq:escalateTo'), (config.roles || []).map(function (r) { return { value: r, label: roleLabel(r) }; }),
          function (v) { update(element, { 'phq:escalateTo': v || undefined }); }, 'escalate_to'),
        gettext('Empty: this timer is the task\u2019s due time. A role: the task escalates to it after this time.'));
      }
    }
  }

  var conditionTimer = null;  // the pending live check of the condition being typed

  // ---- the start event: on a business event (message start) or by hand (start form, starters) ----
  function catalogueEvent(name) {
    return (config.events || []).filter(function (e) { return e.name === name; })[0];
  }

  function startEventName(element) {
    var definition = eventDefinition(element, 'bpmn:MessageEventDefinition');
    if (!definition) { return null; }
    return definition.messageRef ? definition.messageRef.name || '' : '';
  }

  // "" = by hand (a none start); an event name = a message start on that business event.
  function startsOn(element, name) {
    var definition = eventDefinition(element, 'bpmn:MessageEventDefinition');
    if (!name) {
      update(element, { eventDefinitions: [], 'phq:condition': undefined, 'phq:priority': undefined });
      return;
    }
    var message = messageNamed(name);
    if (definition) {
      svc('modeling').updateModdleProperties(element, definition, { messageRef: message });
      return;
    }
    definition = svc('bpmnFactory').create('bpmn:MessageEventDefinition', { messageRef: message });
    definition.$parent = bo(element);
    if (extensionValues(bo(element), 'phq:Input').length) { setExtensionValues(element, 'phq:Input', []); }
    update(element, { eventDefinitions: [definition], 'phq:starters': undefined });
  }

  function renderStart(element) {
    var current = startEventName(element);
    var chooser = document.createElement('select');
    chooser.className = 'form-select form-select-sm';
    chooser.name = 'starts_on';
    chooser.disabled = readOnly;
    function option(parent, value, text) {
      var o = document.createElement('option');
      o.value = value;
      o.textContent = text;
      parent.appendChild(o);
      return o;
    }
    option(chooser, '', gettext('By hand (Start process page)'));
    var group = document.createElement('optgroup');
    group.label = gettext('A business event');
    (config.events || []).slice().sort(function (a, b) { return a.title.localeCompare(b.title); }).forEach(function (e) {
      option(group, e.name, e.title);
    });
    chooser.appendChild(group);
    if (current === '') {
      option(chooser, '?', gettext('— choose the event —')).disabled = true;
    } else if (current && !catalogueEvent(current)) {
      option(chooser, current, fmt(gettext('%(name)s (not in the event catalogue)'), { name: current }));
    }
    chooser.value = current === null ? '' : (current || '?');
    chooser.addEventListener('change', function () {
      startsOn(element, chooser.value);
      renderForm(element);
    });
    field(gettext('Starts on'), chooser, gettext('A business event starts a process for each matching event; by hand, someone starts it from the portal.'));
    if (current === null) { return renderStartByHand(element); }
    renderStartOnEvent(element, current);
  }

  function renderStartOnEvent(element, name) {
    var obj = bo(element);
    var event = catalogueEvent(name);
    if (event) {
      var about = document.createElement('p');
      about.className = 'small mb-1';
      about.id = 'start-event-description';
      about.textContent = event.description.replace(/``/g, '') + ' ' + fmt(gettext('Message name: %(name)s (version %(version)s).'), { name: event.name, version: event.version });
      form.appendChild(about);
    } else if (name) {
      note(fmt(gettext('\u201c%(name)s\u201d is not in the event catalogue: choose one of its events.'), { name: name }));
    }
    var feedback = document.createElement('div');
    var condition = input(obj.get('phq:condition'), function (v) {
      update(element, { 'phq:condition': v || undefined });
    }, { placeholder: 'event.kind == "card_replacement"', name: 'start_condition' });
    condition.addEventListener('input', function () {
      clearTimeout(conditionTimer);
      conditionTimer = setTimeout(function () { checkCondition(condition, feedback, name); }, 300);
    });
    field(gettext('Condition (optional)'), condition, name
      ? fmt(gettext('CEL on the payload as event.<field>. Empty: every %(name)s event.'), { name: name })
      : gettext('CEL on the payload as event.<field>. Empty: every such event.'));
    feedback.className = 'small mb-2';
    feedback.id = 'condition-feedback';
    form.appendChild(feedback);
    if (condition.value) { checkCondition(condition, feedback, name); }
    var priority = input(obj.get('phq:priority') || '0', function (v) {
      update(element, { 'phq:priority': v && Number(v) !== 0 ? v : undefined });
    }, { name: 'priority' });
    priority.type = 'number';
    priority.step = '1';
    priority.min = '-100';
    priority.max = '100';
    field(gettext('Priority'), priority, config.start_rule || '');
    if (config.start_rule_full) { priority.title = config.start_rule_full; }
    if (event) { form.appendChild(payloadTable(event)); }
  }

  // The fields of the event's payload a condition may test.
  function payloadTable(event) {
    var table = document.createElement('table');
    table.className = 'table table-sm small phq-payload mb-2';
    table.id = 'start-event-fields';
    var caption = document.createElement('caption');
    caption.className = 'caption-top py-0';
    caption.textContent = gettext('Payload fields the condition may use as event.<field>');
    table.appendChild(caption);
    var head = table.createTHead().insertRow();
    [gettext('Field'), gettext('Type'), gettext('Description')].forEach(function (text) {
      var th = document.createElement('th');
      th.scope = 'col';
      th.textContent = text;
      head.appendChild(th);
    });
    var body = table.createTBody();
    (event.fields || []).forEach(function (f) {
      var row = body.insertRow();
      row.dataset.field = f.name;
      var name = document.createElement('code');
      name.textContent = f.name;
      row.insertCell().appendChild(name);
      row.insertCell().textContent = f.type.split('/').join(' ' + gettext('or') + ' ') + (f.required ? ', ' + gettext('required') : '');
      row.insertCell().textContent = f.description + (f.values && f.values.length ? ' ' + fmt(gettext('One of: %(values)s.'), { values: f.values.join(', ') }) : '');
    });
    return table;
  }

  function renderStartByHand(element) {
    var obj = bo(element);
    inputsField(element, gettext('Start form fields'), 'start_inputs');
    var always = config.always_starters || [];
    var roles = config.roles || [];
    var chosen = (obj.get('phq:starters') || '').split(',').map(function (s) { return s.trim(); }).filter(Boolean);
    var kept = chosen.filter(function (r) { return roles.indexOf(r) < 0; });  // names the portal does not know: keep them
    var set = document.createElement('fieldset');
    set.className = 'mb-2';
    set.id = 'starters';
    var legend = document.createElement('legend');
    legend.className = 'form-label small fw-semibold mb-0';
    legend.textContent = gettext('Who may start it');
    set.appendChild(legend);
    var boxes = [];
    roles.forEach(function (role, index) {
      var isAlways = always.indexOf(role) >= 0;
      var wrap = document.createElement('div');
      wrap.className = 'form-check';
      var box = document.createElement('input');
      box.type = 'checkbox';
      box.className = 'form-check-input';
      box.id = 'starter-' + index;
      box.name = 'starters';
      box.value = role;
      box.checked = isAlways || chosen.indexOf(role) >= 0;
      box.disabled = readOnly || isAlways;
      var label = document.createElement('label');
      label.className = 'form-check-label small';
      label.htmlFor = box.id;
      label.textContent = roleLabel(role) + (isAlways ? ' ' + gettext('(always)') : '');
      wrap.appendChild(box);
      wrap.appendChild(label);
      set.appendChild(wrap);
      if (!isAlways) { boxes.push(box); }
    });
    boxes.forEach(function (box) {
      box.addEventListener('change', function () {
        var starters = boxes.filter(function (b) { return b.checked; }).map(function (b) { return b.value; }).concat(kept);
        update(element, { 'phq:starters': starters.length ? starters.join(', ') : undefined });
      });
    });
    var help = document.createElement('div');
    help.className = 'form-text';
    help.textContent = fmt(gettext('%(roles)s may always start it.'), { roles: always.map(roleLabel).join(' ' + gettext('and') + ' ') || gettext('Administrators') }) +
      (kept.length ? ' ' + fmt(gettext('Also allowed (unknown here): %(roles)s.'), { roles: kept.join(', ') }) : '');
    set.appendChild(help);
    form.appendChild(set);
  }

  // A user task's outcomes exported as the task followed by the exclusive gateway "<task>__outcome" whose
  // flows carry outcome == "approve": such a flow is edited as an outcome, not as a raw condition.
  var OUTCOME = /^\s*outcome\s*==\s*("(?:[^"\\]|\\.)*")\s*$/;
  function outcomeOf(flow) {
    var condition = bo(flow).conditionExpression;
    var match = condition && condition.body && OUTCOME.exec(condition.body);
    if (!match) { return null; }
    try { return JSON.parse(match[1]); } catch (e) { return null; }
  }
  function isOutcomeGateway(gateway) {
    if (!gateway || !is(gateway, 'bpmn:ExclusiveGateway')) { return false; }
    var incoming = gateway.incoming || [];
    var fromTask = incoming.length === 1 && incoming[0].source && is(incoming[0].source, 'bpmn:UserTask');
    if (!fromTask) { return false; }
    if (/__outcome$/.test(gateway.id)) { return true; }
    var outgoing = gateway.outgoing || [];
    return outgoing.length > 0 && outgoing.every(function (f) { return outcomeOf(f) !== null; });
  }

  function renderFlow(element) {
    var obj = bo(element);
    var source = element.source;
    if (source && isOutcomeGateway(source) && bo(source).default !== obj) {
      var task = source.incoming[0].source;
      field(gettext('Outcome'), input(outcomeOf(element) || obj.name || '', function (v) {
        update(element, {
          conditionExpression: v ? formal('outcome == ' + JSON.stringify(v)) : undefined, name: v || undefined, 'phq:outcome': v || undefined
        });
      }, { placeholder: 'approve', name: 'outcome' }),
      fmt(gettext('The button the employee presses in \u201c%(task)s\u201d to take this path.'), { task: bo(task).name || task.id }));
    } else if (source && is(source, 'bpmn:UserTask')) {
      field(gettext('Outcome'), input(obj.get('phq:outcome') || obj.name, function (v) {
        update(element, { 'phq:outcome': v || undefined, name: v || undefined });
      }, { placeholder: 'approve', name: 'outcome' }), gettext('The button the employee presses to take this path.'));
    } else if (source && is(source, 'bpmn:ExclusiveGateway')) {
      var isDefault = bo(source).default === obj;
      var box = document.createElement('input');
      box.type = 'checkbox';
      box.className = 'form-check-input ms-2';
      box.name = 'default';
      box.checked = isDefault;
      box.disabled = readOnly;
      box.addEventListener('change', function () {
        update(source, { default: box.checked ? obj : undefined });
        if (box.checked) { update(element, { conditionExpression: undefined }); }
        renderForm(element);
      });
      field(gettext('Default flow (taken when no condition holds)'), box);
      if (!isDefault) {
        var feedback = document.createElement('div');
        var condition = input(obj.conditionExpression ? obj.conditionExpression.body : '', function (v) {
          update(element, { conditionExpression: v ? formal(v) : undefined, name: v ? v.slice(0, 60) : undefined });
        }, { placeholder: 'deposit > 0 && approved', name: 'condition' });
        condition.addEventListener('input', function () {
          clearTimeout(conditionTimer);
          conditionTimer = setTimeout(function () { checkCondition(condition, feedback); }, 300);
        });
        field(gettext('Condition (CEL)'), condition);
        feedback.className = 'small mb-2';
        feedback.id = 'condition-feedback';
        form.appendChild(feedback);
        if (condition.value) { checkCondition(condition, feedback); }
      }
    } else {
      note(gettext('A plain flow.'));
    }
  }

  // A decision's condition is checked against the workflow's variables; a start condition (eventName
  // given) against the payload of that business event.
  function checkCondition(control, feedback, eventName) {
    if (readOnly) { return; }  // a saved version is not checked again (and readers may not call the endpoint)
    if (eventName !== undefined && !control.value.trim()) {
      control.classList.remove('is-invalid', 'is-valid');
      feedback.textContent = '';
      return;
    }
    var body = eventName !== undefined
      ? Promise.resolve({ expression: control.value, event: eventName })
      : modeler.saveXML().then(function (result) { return { expression: control.value, xml: result.xml }; });
    body.then(function (data) {
      return post(config.expression_url, data);
    }).then(function (answer) {
      control.classList.toggle('is-invalid', !answer.ok);
      control.classList.toggle('is-valid', answer.ok);
      feedback.className = 'small mb-2 ' + (answer.ok ? 'text-success' : 'text-danger');
      feedback.textContent = answer.ok ? gettext('Valid condition.') : answer.error;
    });
  }

  // ---- talking to the server ----------------------------------------------------------------
  function csrfToken() {
    var match = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    if (match) { return decodeURIComponent(match[1]); }
    var field = document.querySelector('input[name=csrfmiddlewaretoken]');
    return field ? field.value : '';
  }
  function post(url, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrfToken(), 'Accept': 'application/json' },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return { ok: false, errors: [{ message: fmt(gettext('The server answered %(status)s.'), { status: response.status }) }] }; });
    });
  }

  // ---- problems: marked on the elements (outline + badge) and listed under the canvas -------------
  var marked = [];
  function severityOf(problem) { return problem.severity === 'warning' ? 'warning' : 'error'; }
  function clearProblems() {
    var canvas = svc('canvas');
    marked.forEach(function (mark) { try { canvas.removeMarker(mark[0], mark[1]); } catch (e) { /* element gone */ } });
    marked = [];
    svc('overlays').remove({ type: 'phq-problem' });
    problemList.textContent = '';
  }
  function countText(problems) {
    var errors = problems.filter(function (p) { return severityOf(p) === 'error'; }).length;
    var warnings = problems.length - errors;
    var parts = [];
    if (errors) { parts.push(fmt(ngettext('%(count)s error', '%(count)s errors', errors), { count: errors })); }
    if (warnings) { parts.push(fmt(ngettext('%(count)s warning', '%(count)s warnings', warnings), { count: warnings })); }
    return { errors: errors, warnings: warnings, text: parts.join(', ') };
  }
  function reveal(element) {
    svc('selection').select(element);
    try { svc('canvas').scrollToElement(element); } catch (e) { /* not on this canvas */ }
  }
  function showProblems(problems) {
    clearProblems();
    lastProblems = problems || [];
    var registry = svc('elementRegistry');
    var badged = {};
    lastProblems.forEach(function (problem) {
      var severity = severityOf(problem);
      var li = document.createElement('li');
      li.className = 'list-group-item small phq-problem list-group-item-' + (severity === 'error' ? 'danger' : 'warning');
      li.dataset.severity = severity;
      var element = problem.element_id && registry.get(problem.element_id);
      var who = problem.element_name || problem.element_id;
      var kind = document.createElement('span');
      kind.className = 'visually-hidden';
      kind.textContent = (severity === 'error' ? gettext('Error:') : gettext('Warning:')) + ' ';
      li.appendChild(kind);
      li.appendChild(document.createTextNode((who ? who + ': ' : '') + problem.message));
      problemList.appendChild(li);
      if (!element) { return; }
      li.dataset.elementId = problem.element_id;
      li.tabIndex = 0;
      li.setAttribute('role', 'button');
      li.title = who ? fmt(gettext('Show %(element)s in the diagram'), { element: who }) : gettext('Show the element in the diagram');
      li.addEventListener('click', function () { reveal(element); });
      li.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); reveal(element); }
      });
      var marker = 'phq-' + severity;
      svc('canvas').addMarker(element, marker);
      marked.push([element, marker]);
      var badge = badged[element.id];
      if (!badge) {
        badge = badged[element.id] = document.createElement('div');
        badge.textContent = '!';
        badge.title = '';
        svc('overlays').add(element, 'phq-problem', { position: { top: -10, right: 10 }, html: badge });
      }
      if (severity === 'error' || badge.className === '') { badge.className = 'phq-badge phq-badge-' + severity; }
      badge.title += (badge.title ? '\n' : '') + problem.message;
    });
    var counts = countText(lastProblems);
    if (lintBox) {
      lintBox.textContent = lastProblems.length ? fmt(gettext('%(problems)s (errors stop publishing)'), { problems: counts.text }) : gettext('No problems found.');
    }
  }
  var lastProblems = [];
  var lintBox = document.getElementById('editor-lint');

  // ---- dirty, saving, live lint and autosave --------------------------------------------------
  var changes = 0;      // changes to the diagram so far
  var savedAt = 0;      // the value of changes when the diagram last reached the server as the draft
  var saving = false;
  var lintTimer = null;
  var autosaveTimer = null;
  var lintRound = 0;
  function isDirty() { return changes !== savedAt; }
  function markDirty() {
    document.body.dataset.dirty = isDirty() ? 'true' : 'false';
  }
  function diagram() { return modeler.saveXML({ format: true }).then(function (result) { return result.xml; }); }
  function comment() {
    var box = document.getElementById('version-comment');
    return box ? box.value : '';
  }
  function stamp() {
    var now = new Date();
    return String(now.getHours()).padStart(2, '0') + ':' + String(now.getMinutes()).padStart(2, '0');
  }

  // Save, validate or publish: the XML as drawn goes to the server, the answer's problems are marked.
  function send(url, kind) {
    var at = changes;
    saving = kind !== 'validate';
    return diagram().then(function (xml) {
      return post(url, { xml: xml, comment: comment() });
    }).then(function (answer) {
      saving = false;
      showProblems(answer.problems || answer.errors);
      if (answer.saved) {
        savedAt = at;
        markDirty();
        if (answer.version) { config.draft = answer.version; }
      }
      var counts = countText(answer.problems || answer.errors || []);
      var text = answer.message;
      if (kind === 'autosave' && answer.saved) {
        text = fmt(gettext('Autosaved %(time)s (draft v%(version)s)'), { time: stamp(), version: answer.version }) +
          (counts.errors ? ' \u2014 ' + fmt(ngettext('%(count)s problem to fix before publishing', '%(count)s problems to fix before publishing', counts.errors), { count: counts.errors }) : '');
      }
      var tone = answer.saved || answer.ok ? (counts.errors ? 'warning' : 'success') : 'danger';
      if (kind === 'validate') { tone = counts.errors ? 'warning' : 'success'; }
      if (answer.refused || (kind === 'publish' && !answer.ok)) { tone = 'danger'; }
      setStatus(tone, text || (answer.ok ? gettext('Done.') : gettext('Please fix the problems listed below the diagram.')));
      if (answer.ok && answer.redirect) {
        savedAt = changes;
        markDirty();
        window.location.assign(answer.redirect);
      }
      return answer;
    }).catch(function (error) {
      saving = false;
      setStatus('danger', fmt(gettext('The server could not be reached: %(error)s Your changes are still here; try again.'), { error: error.message }));
    });
  }

  function lint() {
    if (readOnly) { return; }
    var round = ++lintRound;
    diagram().then(function (xml) { return post(config.validate_url, { xml: xml }); }).then(function (answer) {
      if (round !== lintRound) { return; }  // a newer change is being checked
      showProblems(answer.problems || answer.errors);
    }).catch(function () { /* the next change or Save tries again */ });
  }

  function autosave() {
    if (readOnly || !isDirty()) { return; }
    if (saving) { scheduleAutosave(); return; }
    send(config.save_url, 'autosave');
  }
  function scheduleAutosave() {
    clearTimeout(autosaveTimer);
    autosaveTimer = setTimeout(autosave, config.autosave_ms || 20000);
  }

  function changed() {
    changes += 1;
    markDirty();
    clearTimeout(lintTimer);
    lintTimer = setTimeout(lint, config.lint_ms || 600);
    scheduleAutosave();
  }

  window.addEventListener('beforeunload', function (event) {
    if (readOnly || !isDirty()) { return; }
    event.preventDefault();
    event.returnValue = '';  // older browsers need a value to ask
  });

  function bind(id, handler) {
    var button = document.getElementById(id);
    if (button) { button.addEventListener('click', function (event) { event.preventDefault(); handler(); }); }
  }
  bind('btn-save', function () { send(config.save_url, 'save'); });
  bind('btn-validate', function () { send(config.validate_url, 'validate'); });
  bind('btn-publish', function () { send(config.publish_url, 'publish'); });
  bind('btn-fit', function () { svc('canvas').zoom('fit-viewport', 'auto'); });
  bind('btn-download', function () {
    modeler.saveXML({ format: true }).then(function (result) {
      var blob = new Blob([result.xml], { type: 'application/xml' });
      var link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = (config.key || 'workflow') + '.bpmn';
      document.body.appendChild(link);
      link.click();
      link.remove();
    });
  });
  var fileInput = document.getElementById('open-file');
  if (fileInput) {
    fileInput.addEventListener('change', function () {
      var file = fileInput.files[0];
      if (!file) { return; }
      file.text().then(function (text) {
        return post(config.check_url, { xml: text }).then(function (answer) {
          if (!answer.ok && answer.refused) {
            setStatus('danger', answer.message);
            showProblems(answer.errors);
            return;
          }
          return modeler.importXML(answer.xml || text).then(function () {
            svc('canvas').zoom('fit-viewport', 'auto');
            setStatus('info', fmt(gettext('Opened %(file)s. Save the draft to keep it.'), { file: file.name }));
            showProblems([]);
          });
        });
      }).catch(function (error) { setStatus('danger', fmt(gettext('Could not open the file: %(error)s'), { error: error.message })); });
    });
  }

  modeler.importXML(config.xml).then(function (result) {
    svc('canvas').zoom('fit-viewport', 'auto');
    if (result.warnings && result.warnings.length) {
      setStatus('warning', fmt(ngettext('%(count)s part of the diagram could not be shown.', '%(count)s parts of the diagram could not be shown.', result.warnings.length), { count: result.warnings.length }));
    }
    var eventBus = svc('eventBus');
    eventBus.on('selection.changed', function (event) {
      var chosen = event.newSelection;
      // A click on an external label (of an event, a gateway or a flow) selects the element it belongs to.
      if (chosen.length === 1 && chosen[0].labelTarget) {
        svc('selection').select(chosen[0].labelTarget);
        return;
      }
      renderForm(chosen[0]);
    });
    if (!readOnly) { eventBus.on('commandStack.changed', changed); }
    renderForm(null);
    var problems = config.problems || [];
    if (problems.length) { showProblems(problems); }
    if (!readOnly && config.draft) {
      var counts = countText(problems);
      setStatus(counts.errors ? 'warning' : 'info', problems.length
        ? fmt(gettext('Draft v%(version)s saved with %(problems)s.'), { version: config.draft, problems: counts.text })
        : fmt(gettext('Draft v%(version)s saved: valid, can be published.'), { version: config.draft }));
    }
    markDirty();
    document.body.dataset.editorReady = 'true';
  }).catch(function (error) {
    setStatus('danger', fmt(gettext('The diagram could not be opened: %(error)s'), { error: error.message }));
  });
})();
