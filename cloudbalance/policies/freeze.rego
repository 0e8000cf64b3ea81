# METADATA
# title: Freeze windows
# description: >-
#   No change is written on a day inside a guardrails.freeze window (start and end inclusive,
#   dates in UTC); a dry run still shows what would change. This policy is the only place a
#   freeze is enforced.
package cloudbalance.starter.freeze

import rego.v1

deny contains msg if {
	input.mode != "dry-run"
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
