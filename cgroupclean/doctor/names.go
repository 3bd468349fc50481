package doctor

// namer names pods by namespace/name and containers by namespace/pod/name,
// from what the runtime lists; a cgroup the runtime does not know keeps its
// path.
type namer struct {
	pods       map[string]string // pod UID -> namespace/name
	containers map[string]string // container ID -> name
	sandboxes  map[string]bool
}

func newNamer(in Input) namer {
	n := namer{pods: map[string]string{}, containers: map[string]string{}, sandboxes: map[string]bool{}}
	if in.Scan != nil {
		for _, sb := range in.Scan.Snapshot.Sandboxes {
			n.pods[sb.PodUID] = sb.Namespace + "/" + sb.Name
			n.sandboxes[sb.ID] = true
		}
	}
	for _, c := range in.Containers {
		n.containers[c.ID] = c.Name
	}
	return n
}

func (n namer) pod(uid, path string) string {
	if p, ok := n.pods[uid]; ok {
		return p
	}
	return path
}

func (n namer) container(uid, id, path string) string {
	p, ok := n.pods[uid]
	if !ok {
		return path
	}
	if name, ok := n.containers[id]; ok {
		return p + "/" + name
	}
	if n.sandboxes[id] {
		return p + "/(sandbox)"
	}
	return p + "/" + id[:min(12, len(id))]
}
