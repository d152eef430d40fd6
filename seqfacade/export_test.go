package seqfacade

import "errors"

// KillGroupOf unloads the group that serves uid as a failure would: the
// next call for it loads the group again. For tests outside the package.
func KillGroupOf(n *Node, uid uint64) {
	sec, _ := n.lay.locate(uid)
	g, _ := n.lay.groupOf(sec)
	if gr := n.groups[g].Load(); gr != nil {
		gr.kill(errors.New("unloaded by a test"))
	}
}
