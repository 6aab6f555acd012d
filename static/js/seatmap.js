// The venue plan: zoom and pan (wheel, pinch, buttons, keys), overview, keyboard navigation.
