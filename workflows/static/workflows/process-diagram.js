/* One process on its version's diagram (bpmn-js NavigatedViewer): the current step, the path taken
 * (visited elements, flows taken, a count where a step was entered more than once), incidents with
 * their error and a Retry form, open timers with their due time, the end reached. The history list
 * and the diagram point at each other: a step in the history centres it on the diagram, an element
 * clicked on the diagram filters the history to that step. Data: #process-diagram-data (json_script). */
(function () {
  'use strict';
  var container = document.getElementById('process-diagram');
  var status = document.getElementById('process-diagram-status');
  var source = document.getElementById('process-diagram-data');
  if (!container || !source) { return; }
  var data = JSON.parse(source.textContent);
  // Texts come from the djangojs catalogue (base.html loads /jsi18n/ first); fmt fills %(name)s placeholders.
  function fmt(text, values) { return interpolate(text, values, true); }
  function say(text) { if (status) { status.textContent = text; } }
  function done(ok) { container.dataset.ready = ok ? 'true' : 'failed'; }
  if (typeof BpmnJS === 'undefined') { say(gettext('The diagram viewer could not be loaded; the history below has every step.')); done(false); return; }

  var viewer = new BpmnJS({ container: container, moddleExtensions: { phq: window.PHQ_MODDLE } });
  window.phqProcessViewer = viewer;
  var names = data.names || {};

  function stepOf(elementId) {  // helper elements of the export are named <step>__<suffix>
    var cut = elementId.indexOf('__');
    return cut > 0 ? elementId.slice(0, cut) : elementId;
  }
  function nameOf(stepId) { return names[stepId] || stepId; }
  function node(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined) { el.textContent = text; }
    return el;
  }

  /* The flows from step `from` to step `to`: a direct flow, or one through the step's own helper
   * elements (an outcome gateway, a boundary timer, an event-based wait's catch events). */
  function flowsBetween(registry, from, to, hint) {
    var start = registry.get(from);
    if (!start) { return []; }
    var prefix = from + '__';
    var queue = [{ element: start, via: [] }];
    var found = [];
    var seen = {};
    seen[from] = true;
    while (queue.length) {
      var item = queue.shift();
      var element = item.element;
      var next = (element.outgoing || []).map(function (c) { return { connection: c, target: c.target }; });
      (element.attachers || []).forEach(function (a) { next.push({ connection: null, target: a }); });
      next.forEach(function (step) {
        var target = step.target;
        if (!target) { return; }
        var via = step.connection ? item.via.concat([step.connection]) : item.via.concat([]);
        if (target.id === to) {
          found.push({ via: via, helpers: item.helpers || [] });
        } else if (target.id.indexOf(prefix) === 0 && !seen[target.id]) {
          seen[target.id] = true;
          queue.push({ element: target, via: via, helpers: (item.helpers || []).concat([target]) });
        }
      });
    }
    if (!found.length) { return []; }
    function score(candidate) {  // prefer the path the history names: its outcome, or its timer
      var s = 0;
      var timed = candidate.helpers.some(function (h) { return /__timeout$/.test(h.id); });
      if (hint.timeout === timed) { s += 2; }
      if (hint.outcome && candidate.via.some(function (c) {
        var bo = c.businessObject || {};
        return (bo.get ? bo.get('phq:outcome') : (bo.$attrs || {})['phq:outcome']) === hint.outcome;
      })) { s += 1; }
      return s;
    }
    found.sort(function (a, b) { return score(b) - score(a); });
    return found[0].via.concat(found[0].helpers);
  }

  function badge(overlays, id, className, text, title, position) {
    var el = node('div', 'phq-badge ' + className, text);
    if (title) { el.title = title; }
    overlays.add(id, 'phq-process', { position: position || { top: -12, right: 12 }, html: el });
    return el;
  }

  function draw() {
    var canvas = viewer.get('canvas');
    var overlays = viewer.get('overlays');
    var registry = viewer.get('elementRegistry');
    var visits = data.visits || {};
    var marked = 0;
    Object.keys(visits).forEach(function (id) {
      if (!registry.get(id)) { return; }
      canvas.addMarker(id, 'phq-visited');
      marked += 1;
      if (visits[id] > 1) {
        badge(overlays, id, 'phq-count', '×' + visits[id], 'Entered ' + visits[id] + ' times');
      }
    });
    (data.path || []).forEach(function (move) {
      flowsBetween(registry, move.from, move.to, move).forEach(function (element) {
        canvas.addMarker(element.id, element.waypoints ? 'phq-taken' : 'phq-visited');
      });
    });
    if (data.current && registry.get(data.current.id)) {
      var current = data.current;
      canvas.addMarker(current.id, 'phq-current');
      var lines = current.tasks.map(function (task) {
        return task.assignee
          ? fmt(gettext('%(state)s by %(person)s'), { state: task.state, person: task.assignee })
          : fmt(gettext('Open for %(role)s'), { role: task.role });
      });
      if (current.waiting_for) { lines.push(fmt(gettext('Waits for %(message)s'), { message: current.waiting_for })); }
      if (lines.length) {
        var who = node('div', 'phq-badge phq-who');
        lines.forEach(function (line) { who.appendChild(node('div', '', line)); });
        overlays.add(current.id, 'phq-process', { position: { bottom: -6, left: 0 }, html: who });
      }
    }
    if (data.ended && registry.get(data.ended.id)) {
      canvas.addMarker(data.ended.id, data.ended.state === 'completed' ? 'phq-end-reached' : 'phq-cancelled');
      badge(overlays, data.ended.id, 'phq-ended', data.ended.label, data.ended.name, { bottom: -6, left: -20 });
    }
    if (data.incident && registry.get(data.incident.id)) {
      var incident = data.incident;
      canvas.addMarker(incident.id, 'phq-incident');
      var box = node('div', 'phq-incident-box');
      box.setAttribute('role', 'alert');
      box.appendChild(node('strong', '', incident.at ? fmt(gettext('Incident since %(time)s'), { time: incident.at }) : gettext('Incident')));
      var error = incident.error.length > 300 ? incident.error.slice(0, 300) + '…' : incident.error;
      var text = node('div', 'phq-incident-error', error);
      text.title = incident.error;
      box.appendChild(text);
      var retry = document.getElementById('process-diagram-retry');
      if (retry) { box.appendChild(retry.content.cloneNode(true)); }
      overlays.add(incident.id, 'phq-process', { position: { bottom: -8, left: 0 }, html: box });
    }
    (data.timers || []).forEach(function (timer) {
      var id = timer.elements.filter(function (candidate) { return registry.get(candidate); })[0];
      if (!id) { return; }
      canvas.addMarker(id, 'phq-timer');
      var el = badge(overlays, id, 'phq-timer-badge', '⏱ ' + timer.label, nameOf(timer.step) + ': ' + timer.label,
        { top: -22, left: 0 });
      el.dataset.element = id;
    });
    container.dataset.marked = String(marked);
  }

  /* history ↔ diagram */
  var history = document.getElementById('process-history');
  var filter = document.getElementById('history-filter');
  var focused = null;

  function focus(stepId) {
    var canvas = viewer.get('canvas');
    var element = viewer.get('elementRegistry').get(stepId);
    if (focused) { canvas.removeMarker(focused, 'phq-focus'); }
    focused = null;
    if (!element) { say(fmt(gettext('“%(step)s” is not on this version’s diagram.'), { step: nameOf(stepId) })); return; }
    canvas.addMarker(stepId, 'phq-focus');
    focused = stepId;
    canvas.scrollToElement(element, { top: 120, right: 120, bottom: 120, left: 120 });
    container.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
  }

  function filterHistory(stepId) {
    if (!history) { return; }
    var first = null;
    Array.prototype.forEach.call(history.children, function (li) {
      var show = !stepId || li.dataset.step === stepId;
      li.classList.toggle('history-hidden', !show);
      if (show && !first) { first = li; }
    });
    if (filter) {
      filter.hidden = !stepId;
      document.getElementById('history-filter-name').textContent = stepId ? nameOf(stepId) : '';
    }
    if (stepId && first && first.dataset.step) { first.scrollIntoView({ block: 'nearest', behavior: 'smooth' }); }
    if (history) { history.dataset.filter = stepId || ''; }
  }

  if (history) {
    history.addEventListener('click', function (event) {
      var button = event.target.closest('.history-step');
      if (button) { focus(button.dataset.step); }
    });
  }
  var clear = document.getElementById('history-filter-clear');
  if (clear) { clear.addEventListener('click', function () { filterHistory(''); }); }

  viewer.importXML(data.xml)
    .then(function () {
      viewer.get('canvas').zoom('fit-viewport', 'auto');
      draw();
      viewer.get('eventBus').on('element.click', function (event) {
        var element = event.element;
        if (!element || !element.parent || element.type === 'bpmn:Process') { filterHistory(''); return; }
        var target = element.waypoints ? (element.source || element) : element;
        filterHistory(stepOf(target.id));
      });
      say(gettext('Drag to move, scroll to zoom. Click a step to see its history; click a step in the history to find it here.'));
      done(true);
    })
    .catch(function (err) {
      say(fmt(gettext('The diagram could not be drawn (%(error)s); the history below has every step.'), { error: err.message }));
      done(false);
    });
})();
