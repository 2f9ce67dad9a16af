"""Triggered flows: event-entered series of messages with delays, conditions and exits."""

from profilecast.flows.definition import Flow, FlowError, load_flows

__all__ = ["Flow", "FlowError", "load_flows"]
