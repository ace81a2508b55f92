package WaMetrics;

# Reading a Prometheus exposition in tests: its samples by series, and the
# metric families docs/metrics.md does not list.

use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;

# { 'name{labels}' => value } of the text's samples
sub samples {
    my ($text) = @_;
    my %m;
    for (split /\n/, $text // '') {
        next if /^#/;
        my ($k, $v) = /^(\S+(?:\{[^}]*\})?) (\S+)$/ or next;
        $m{$k} = $v;
    }
    return \%m;
}

# the families of the text (its # TYPE lines) docs/metrics.md does not list
sub undocumented {
    my ($text) = @_;
    my $doc = File::Spec->rel2abs(dirname(__FILE__) . '/../../docs/metrics.md');
    open my $fh, '<', $doc or die "$doc: $!";
    my %doc = map { $_ => 1 } do { local $/; <$fh> } =~ /^\| `(wa_relay_\w+)`/mg;
    return grep { !$doc{$_} } $text =~ /^# TYPE (\S+)/mg;
}

1;
