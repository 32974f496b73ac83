import Testing
import StarlingCluster
