# METADATA
# title: Freeze windows
# description: >-
#   No change is written on a day inside a guardrails.freeze window (start and end inclusive,
#   dates in UTC).
package cloudbalance.starter.freeze

import rego.v1

deny contains msg if {
	input.summary.moves > 0
	some window in input.settings.guardrails.freeze
	input.now >= window.start
	input.now <= window.end
	text := concat("", [
		"freeze: no change may be written from ", window.start, " to ", window.end, ": ",
		object.get(window, "reason", ""),
	])
	msg := trim_right(text, ": ")
}
