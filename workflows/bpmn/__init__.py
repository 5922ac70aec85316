"""BPMN 2.0 interchange: read a BPMN file into our compact definition format and write one back.

    result = bpmn_to_definition(xml_bytes, key="season-contract")   # BpmnImport(spec, layout, warnings)
    xml = definition_to_bpmn(result.spec, layout=result.layout)     # str, with diagram interchange

A refused file raises :class:`BpmnError` whose ``problems`` name each offending element by id and name.
"""

from ._common import BPMN, DEFINITION_LIMITS, MAX_BYTES, PHQ, Bounds, BpmnError, BpmnImport, Layout, Problem
from .reader import bpmn_to_definition, is_duration, parse_xml, xml_text
from .writer import auto_layout, definition_to_bpmn

__all__ = [
    "BPMN",
    "DEFINITION_LIMITS",
    "MAX_BYTES",
    "PHQ",
    "Bounds",
    "BpmnError",
    "BpmnImport",
    "Layout",
    "Problem",
    "auto_layout",
    "bpmn_to_definition",
    "definition_to_bpmn",
    "is_duration",
    "layout_of",
    "parse_xml",
    "xml_text",
]


def layout_of(xml: str | bytes | None) -> Layout | None:
    """The diagram positions of a stored BPMN file (None when there is none or it cannot be read)."""
    if not xml:
        return None
    try:
        return bpmn_to_definition(xml).layout
    except BpmnError:
        return None
