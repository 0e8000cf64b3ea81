# METADATA
# title: Monthly cost per cloud
# description: >-
#   The estimated monthly cost of the placements on one cloud stays under
#   guardrails.max_monthly_cost[cloud]. The estimate needs unit costs; when none are known the
#   policy warns that it could not check.
package cloudbalance.starter.max_monthly_cost

import rego.v1

caps := object.get(input.settings.guardrails, "max_monthly_cost", {})

deny contains msg if {
	some cloud, cap in caps
	amount := input.costs.monthly_by_cloud[cloud]
	amount > cap
	msg := sprintf(
		"max_monthly_cost: %v would cost about %v %v a month, above its cap of %v %v",
		[cloud, amount, input.costs.currency, cap, input.costs.currency],
	)
}

warn contains msg if {
	count(caps) > 0
	input.summary.moves > 0
	input.costs.monthly_by_cloud == null
	msg := "max_monthly_cost: no unit costs are known for this change, the monthly caps were not checked"
}
