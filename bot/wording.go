package bot

// Wording of what people see (issue 14): categories in words, and the
// events that are said once however many domain events they take.

// categoryLabels are casework's categories as people read them.
var categoryLabels = map[string]string{
	"alert_inquiry":         "Alert inquiry",
	"device_compromise":     "Possible device compromise",
	"threat_intel":          "Threat intelligence",
	"notification_question": "Question about a notification",
	"other":                 "General question",
	"network_connection":    "Suspicious network connection",
}

// categoryLabel is a case category in words ("Possible device
// compromise"); an unknown one is shown with its underscores as spaces.
func categoryLabel(c string) string {
	if l, ok := categoryLabels[c]; ok {
		return l
	}
	out := []rune(c)
	for i, r := range out {
		if r == '_' {
			out[i] = ' '
		}
	}
	return string(out)
}

// takenFromNew reports whether ev is the new -> in_progress change that
// casework records with every take or assignment out of new: the
// assignment's own event already edits the cards and says it in each
// thread, so this one shows nothing.
func takenFromNew(ev CaseEvent) bool {
	return ev.Kind == CaseStatus && ev.From == StatusNew && ev.To == StatusInProgress
}
