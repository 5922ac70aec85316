/* The moddle descriptor of our BPMN extension namespace (phq): every attribute and element the
 * server's export (workflows/bpmn/writer.py) writes is declared here, so bpmn-js imports our files
 * without warnings. Shared by the editor and the process diagram.
 *
 * Between the two marker comments the descriptor is plain JSON (double quotes, no trailing commas):
 * workflows/tests/test_interchange.py reads it and checks every phq attribute and element of every
 * shipped export against it. Keep it that way. */
(function () {
  'use strict';

  var PHQ_MODDLE = /* moddle:begin */ {
    "name": "ParkingHQ",
    "uri": "https://parkinghq.example/schema/bpmn/1.0",
    "prefix": "phq",
    "xml": { "tagAlias": "lowerCase" },
    "associations": [],
    "types": [
      { "name": "ProcessProps", "extends": ["bpmn:Process"], "isAbstract": true,
        "properties": [{ "name": "category", "isAttr": true, "type": "String" }] },
      { "name": "UserTaskProps", "extends": ["bpmn:UserTask"], "isAbstract": true,
        "properties": [{ "name": "role", "isAttr": true, "type": "String" },
          { "name": "scope", "isAttr": true, "type": "String" },
          { "name": "dueIn", "isAttr": true, "type": "String" }] },
      { "name": "ActivityLabelProps", "extends": ["bpmn:UserTask", "bpmn:ServiceTask", "bpmn:CallActivity"],
        "isAbstract": true,
        "properties": [{ "name": "autoName", "isAttr": true, "type": "String" }] },
      { "name": "ServiceTaskProps", "extends": ["bpmn:ServiceTask"], "isAbstract": true,
        "properties": [{ "name": "task", "isAttr": true, "type": "String" },
          { "name": "retries", "isAttr": true, "type": "String" },
          { "name": "retryBackoff", "isAttr": true, "type": "String" },
          { "name": "timeout", "isAttr": true, "type": "String" }] },
      { "name": "FlowProps", "extends": ["bpmn:SequenceFlow"], "isAbstract": true,
        "properties": [{ "name": "outcome", "isAttr": true, "type": "String" }] },
      { "name": "StartProps", "extends": ["bpmn:StartEvent"], "isAbstract": true,
        "properties": [{ "name": "condition", "isAttr": true, "type": "String" },
          { "name": "priority", "isAttr": true, "type": "String" },
          { "name": "starters", "isAttr": true, "type": "String" }] },
      { "name": "EndProps", "extends": ["bpmn:EndEvent"], "isAbstract": true,
        "properties": [{ "name": "result", "isAttr": true, "type": "String" }] },
      { "name": "CatchProps", "extends": ["bpmn:IntermediateCatchEvent"], "isAbstract": true,
        "properties": [{ "name": "untilVariable", "isAttr": true, "type": "String" }] },
      { "name": "BoundaryProps", "extends": ["bpmn:BoundaryEvent"], "isAbstract": true,
        "properties": [{ "name": "escalateTo", "isAttr": true, "type": "String" }] },
      { "name": "Escalation", "superClass": ["Element"],
        "properties": [{ "name": "after", "isAttr": true, "type": "String" },
          { "name": "to", "isAttr": true, "type": "String" }] },
      { "name": "Input", "superClass": ["Element"],
        "properties": [{ "name": "name", "isAttr": true, "type": "String" },
          { "name": "label", "isAttr": true, "type": "String" },
          { "name": "type", "isAttr": true, "type": "String" },
          { "name": "required", "isAttr": true, "type": "String" },
          { "name": "choices", "type": "Choice", "isMany": true }] },
      { "name": "Choice", "superClass": ["Element"],
        "properties": [{ "name": "value", "isAttr": true, "type": "String" }] },
      { "name": "Extra", "superClass": ["Element"],
        "properties": [{ "name": "name", "isAttr": true, "type": "String" },
          { "name": "body", "isBody": true, "type": "String" }] }
    ]
  } /* moddle:end */;
  window.PHQ_MODDLE = PHQ_MODDLE;
})();
