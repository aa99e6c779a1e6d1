package repository

import "unsafe"

func sizeofRecord() uintptr { return unsafe.Sizeof(indexRecord{}) }
